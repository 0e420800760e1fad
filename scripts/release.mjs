#!/usr/bin/env node
// Builds the release tarball that ansible/ ships to hosts that may reach no package registry: the compiled
// dist/, the production node_modules (from the lockfile, dev-only packages left out), the built native addon,
// the .proto files the code loads from src/, the systemd units and package.json. Node itself is not inside: the hosts bring their own (same glibc).
//
// usage: node scripts/release.mjs [--out FILE] [--no-build]     (npm run release -- --out FILE)
//
// Entries are sorted, owned by root and stamped with one time (SOURCE_DATE_EPOCH, else the last commit's), so
// the same source gives the same tarball and re-deploying it changes nothing on a host.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const ADDON = 'native/build/Release/vmesh_native.node';

function fail(message) {
  console.error(`release: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const opts = { out: join(ROOT, 'release', `vmesh-${pkg.version}-linux-${process.arch}.tar.gz`), build: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-build') opts.build = false;
    else if (a === '--out' && argv[i + 1]) opts.out = resolve(argv[++i]);
    else if (a.startsWith('--out=')) opts.out = resolve(a.slice('--out='.length));
    else fail(`unknown argument "${a}" (usage: release.mjs [--out FILE] [--no-build])`);
  }
  return opts;
}

/** The installed production packages, as paths relative to ROOT; a package inside another one's folder comes with it. */
function productionModules() {
  const lockPath = join(ROOT, 'package-lock.json');
  if (!existsSync(lockPath)) fail('package-lock.json is missing: the release takes its package list from the lockfile');
  const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
  const paths = [];
  for (const [path, meta] of Object.entries(lock.packages ?? {})) {
    if (!path.startsWith('node_modules/') || meta.dev) continue;
    if (existsSync(join(ROOT, path))) paths.push(path);
    else if (!meta.optional && !meta.devOptional) fail(`${path} is in the lockfile but not installed: run "npm ci"`);
  }
  paths.sort();
  return paths.filter((p, i) => !paths.slice(0, i).some((q) => p.startsWith(`${q}/`)));
}

/** Files the code reads at run time from src/ (its .proto files): tsc compiles only the .ts beside them. */
function sourceAssets(dir = 'src') {
  const out = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...sourceAssets(rel));
    else if (!e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

function sourceDate() {
  if (process.env.SOURCE_DATE_EPOCH && /^\d+$/.test(process.env.SOURCE_DATE_EPOCH)) return process.env.SOURCE_DATE_EPOCH;
  const r = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 && /^\d+$/.test(r.stdout.trim()) ? r.stdout.trim() : '0';
}

const opts = parseArgs(process.argv.slice(2));
if (opts.build) {
  // As `npm run build`: the generated message types first (src/generated/ is build output, not in git).
  execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'gen-xds-types.ts')], { cwd: ROOT, stdio: 'inherit' });
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}
for (const need of ['dist/src/cli/main.js', ADDON, 'systemd/vmesh-agent.service', 'systemd/vmesh-controller.service']) {
  if (!existsSync(join(ROOT, need))) fail(`${need} is missing (${need === ADDON ? 'npm install builds the addon' : 'run npm run build'})`);
}
const assets = sourceAssets();
// A stale addon would ship old native code under new JavaScript: refuse it.
const addonTime = statSync(join(ROOT, ADDON)).mtimeMs;
const nativeSources = ['native/binding.gyp', ...readdirSync(join(ROOT, 'native/src')).map((f) => `native/src/${f}`)];
const newer = nativeSources.filter((f) => statSync(join(ROOT, f)).mtimeMs > addonTime);
if (newer.length > 0) fail(`${ADDON} is older than ${newer.join(', ')}: rebuild it (npm install, or npm run install)`);
const entries = ['package.json', 'dist', ADDON, 'systemd', ...assets, ...productionModules()];
mkdirSync(dirname(opts.out), { recursive: true });
const tmp = `${opts.out}.${process.pid}.tmp`;
const tar = spawnSync(
  'tar',
  [
    '--create',
    '--gzip',
    '--file',
    tmp,
    '--directory',
    ROOT,
    '--sort=name',
    `--mtime=@${sourceDate()}`,
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mode=go-w',
    '--exclude=node_modules/.bin',
    '--exclude=*/node_modules/.bin',
    '--exclude=*.map',
    '--',
    ...entries,
  ],
  { encoding: 'utf8' },
);
if (tar.status !== 0) {
  rmSync(tmp, { force: true });
  fail(`tar failed: ${tar.error?.message ?? tar.stderr}`);
}
renameSync(tmp, opts.out);
console.log(`release: ${opts.out} (${(statSync(opts.out).size / 1e6).toFixed(1)} MB, ${entries.length - 4 - assets.length} packages)`);
