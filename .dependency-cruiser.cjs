// The layer order (the README's layer line): lib <- api <- store <- config, xds, ca <- discovery, capture, proxy,
// dns <- controller, agent <- cli. A folder may import its own level's code only from itself.
const layers = [
  ['lib'],
  ['api'],
  ['store'],
  ['config', 'xds', 'ca'],
  ['discovery', 'capture', 'proxy', 'dns'],
  ['controller', 'agent'],
  ['cli'],
];

const forbidden = [
  { name: 'no-circular', severity: 'error', comment: 'import cycles are forbidden', from: {}, to: { circular: true } },
  {
    name: 'controller-services-not-wiring',
    severity: 'error',
    comment: 'a controller service is a component the wiring (src/controller/*.ts) puts together; it does not import the wiring',
    from: { path: '^src/controller/services/' },
    to: { path: '^src/controller/[^/]+\\.ts$' },
  },
  {
    name: 'no-orphans',
    severity: 'error',
    comment: 'every module is reachable from an entry point or is an entry point',
    // The UI's browser script is loaded by its page, not imported.
    from: { orphan: true, path: '^src/', pathNot: '^src/((cli/main|agent/proxy-worker-main|.*/index)\\.ts|controller/ui/.*)$' },
    to: {},
  },
];

layers.forEach((level, i) => {
  const above = layers.slice(i + 1).flat();
  for (const folder of level) {
    const peers = level.filter((f) => f !== folder);
    const banned = [...above, ...peers];
    if (banned.length === 0) continue;
    forbidden.push({
      name: `layer-${folder}`,
      severity: 'error',
      comment: `src/${folder} may import only from lower layers (${layers.slice(0, i).flat().join(', ') || 'none'}) and itself`,
      from: { path: `^src/${folder}/` },
      to: { path: `^src/(${banned.join('|')})/` },
    });
  }
});

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    // Generated message types (npm run generate): build output that any layer may use, like a package.
    exclude: { path: '^src/generated/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
