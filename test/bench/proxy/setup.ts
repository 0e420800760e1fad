// The bench lab: h1 runs the controller; h2 (client) and h3 (server) each run an agent with its proxy and capture,
// plus haproxy pairs and the unmeshed direct path on ports capture leaves alone. One upstream process on h3 serves
// the meshed port (8080, reached through 15006) and the unmeshed one (8081) so every path hits the same server.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../../src/lib/logger.js';
import { createLab, type Lab, type LabHost, type LabProcess } from '../../lab/lab.js';
import { CLIENT_PORTS, type HaproxyMode, SERVER_PORTS, writeHaproxyConfigs } from './haproxy.js';
import { APP, checkGrpc, programPid } from './measure.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const node = process.execPath;
export const PORTS = {
  meshHttp: 8080,
  directHttp: 8081,
  meshH2c: 8082,
  directH2c: 8083,
  meshGrpc: 8084,
  directGrpc: 8085,
  meshTcp: 9000,
  directTcp: 9001,
} as const;
const SERVICE = 'bench';
/** The vmesh proxy runs one worker per core: the HAProxy reference gets as many threads. */
export const VMESH_PROXY_WORKERS = availableParallelism();

export interface ProxyProc {
  readonly host: 'client' | 'server';
  readonly pid: number;
  readonly name: string;
}
export interface BenchPath {
  readonly name: 'direct' | 'haproxy-plain' | 'haproxy-mtls' | 'vmesh';
  readonly httpUrl: string;
  /** The same answer over cleartext HTTP/2 (prior knowledge) from the client's side. */
  readonly h2Url: string;
  /** Where a gRPC client dials (host:port) for the unary bench.Echo/Get. */
  readonly grpcTarget: string;
  readonly tcp: { host: string; port: number };
  readonly proxies: readonly ProxyProc[];
  /** What the upstream sees as the peer: proves which path a request took. */
  readonly expectPeer: string;
}
export interface BenchLab {
  readonly lab: Lab;
  readonly client: LabHost;
  readonly server: LabHost;
  readonly paths: readonly BenchPath[];
  readonly agents: readonly LabProcess[];
  readonly dirs: readonly string[];
  cleanup(): Promise<void>;
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, diag: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`${what} not reached after ${timeoutMs} ms\n${diag()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function adminGet(host: LabHost, path: string): Promise<string> {
  const r = await host.exec(
    node,
    ['-e', `require('http').get('http://127.0.0.1:15000${path}',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(b))})`],
    { timeoutMs: 5000 },
  );
  return r.stdout;
}

export async function setupBenchLab(opts: {
  logger: Logger;
  profileDir?: string;
  /** Extra node flags for both agents (e.g. --perf-basic-prof for `perf record`). */
  agentNodeArgs?: readonly string[];
  log: (m: string) => void;
  /** Another checkout to run the controller and agents from (a before/after comparison in one time window). */
  vmeshRoot?: string;
}): Promise<BenchLab> {
  const CLI = join(opts.vmeshRoot ?? ROOT, 'src', 'cli', 'main.ts');
  const lab = await createLab({ hosts: 3 });
  const [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
  const ctlDir = await mkdtemp(join(tmpdir(), 'vmesh-bench-ctl-'));
  const agentDirs = { h2: await mkdtemp(join(tmpdir(), 'vmesh-bench-h2-')), h3: await mkdtemp(join(tmpdir(), 'vmesh-bench-h3-')) };
  const hapDir = await mkdtemp(join(tmpdir(), 'vmesh-bench-haproxy-'));
  const dirs = [ctlDir, agentDirs.h2, agentDirs.h3, hapDir];
  const resolvDir = `/etc/netns/${h2.netns}`;
  const agents: LabProcess[] = [];
  const cleanup = async (): Promise<void> => {
    await lab.teardown();
    rmSync(resolvDir, { recursive: true, force: true });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    mkdirSync(resolvDir, { recursive: true });
    writeFileSync(join(resolvDir, 'resolv.conf'), 'nameserver 198.18.0.254\n');
    const api = 'https://127.0.0.1:15014';
    const cli = (args: string[]) =>
      h1.execOk(node, ['--import', 'tsx', CLI, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 30_000 });

    opts.log('starting controller and upstream');
    const controller = h1.spawn(node, ['--import', 'tsx', CLI, 'controller', '--data-dir', ctlDir, '--advertise', h1.ipv4]);
    const upstream = h3.spawn(node, [
      join(import.meta.dirname, 'upstream.mjs'),
      `${PORTS.meshHttp},${PORTS.directHttp}`,
      `${PORTS.meshTcp},${PORTS.directTcp}`,
      `${PORTS.meshH2c},${PORTS.directH2c}`,
      `${PORTS.meshGrpc},${PORTS.directGrpc}`,
    ]);
    await Promise.all([controller.waitForLine(/"ready":true/, 30_000), upstream.waitForLine(/ready/)]);

    // The client app is a registered workload on h2 running as APP's uid: its calls present its own identity.
    await cli([
      'workload',
      'register',
      '--name',
      'bench-client',
      '--service',
      'bench-client',
      '--service-account',
      'bench-client',
      '--address',
      h2.ipv4,
      '--port',
      'http:9999',
      '--host',
      'h2',
      '--uid',
      String(APP.uid),
      '--no-wait',
    ]);
    opts.log('starting agents');
    const unmeshed = [
      PORTS.directHttp,
      PORTS.directH2c,
      PORTS.directGrpc,
      PORTS.directTcp,
      ...Object.values(SERVER_PORTS).flatMap((p) => [p.http, p.h2, p.tcp]),
    ].join(',');
    for (const [host, name] of [
      [h2, 'h2'],
      [h3, 'h3'],
    ] as const) {
      const dir = agentDirs[name];
      writeFileSync(join(dir, 'token'), (await cli(['token', 'create', '--host', name])).trim(), { mode: 0o600 });
      // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the agent's command line.
      const prof = opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(opts.profileDir, name)}`] : [];
      // Proxy workers do not inherit --cpu-prof: a profiled run keeps the proxy inside the agent, so the profile covers it.
      const workers = opts.profileDir ? ['--proxy-workers', '0'] : [];
      const args = [
        ...prof,
        ...(opts.agentNodeArgs ?? []),
        '--import',
        'tsx',
        CLI,
        'agent',
        '--controller',
        `${h1.ipv4}:15012`,
        '--token-file',
        join(dir, 'token'),
        ...workers,
      ];
      // Each agent installs capture itself (its table is owned by it); the haproxy and direct ports are left out
      // so all paths can be interleaved: the client host's outbound, the server host's inbound.
      const env: Record<string, string> =
        name === 'h2' ? { VMESH_CAPTURE_EXCLUDE_OUTBOUND_PORTS: unmeshed } : { VMESH_CAPTURE_EXCLUDE_INBOUND_PORTS: unmeshed };
      agents.push(host.spawn(node, [...args, '--data-dir', dir, '--host-name', name], { uid: 0, gid: 1337, env }));
    }
    await Promise.all(agents.map((a) => a.waitForLine(/"ready":true/, 30_000)));

    opts.log('registering the workload (mesh mTLS between the proxies, the default)');
    await cli([
      'workload',
      'register',
      '--name',
      `${SERVICE}-1`,
      '--service',
      SERVICE,
      '--address',
      h3.ipv4,
      '--port',
      `http:${PORTS.meshHttp}`,
      `http2:${PORTS.meshH2c}`,
      `grpc:${PORTS.meshGrpc}`,
      `tcp:${PORTS.meshTcp}`,
      '--host',
      'h3',
    ]);
    const cluster = `outbound|${PORTS.meshHttp}||${SERVICE}.default.mesh`;
    let dumps = ['', ''];
    await waitFor(
      'the config and the workload certificates on both agents',
      async () => {
        dumps = [await adminGet(h2, '/config_dump'), await adminGet(h3, '/config_dump')];
        const certs = [await adminGet(h2, '/certs'), await adminGet(h3, '/certs')];
        return (
          dumps[0]?.includes(cluster) === true &&
          dumps[1]?.includes(`inbound|${PORTS.meshHttp}`) === true &&
          dumps[0]?.includes(`outbound|${PORTS.meshH2c}||`) === true &&
          dumps[1]?.includes(`inbound|${PORTS.meshH2c}`) === true &&
          dumps[0]?.includes(`outbound|${PORTS.meshGrpc}||`) === true &&
          dumps[1]?.includes(`inbound|${PORTS.meshGrpc}`) === true &&
          certs[0]?.includes('/sa/bench-client') === true &&
          certs[1]?.includes(`/sa/${SERVICE}`) === true
        );
      },
      30_000,
      () => `h2 agent: ${agents[0]?.stderr().slice(-2000)}\nh3 agent: ${agents[1]?.stderr().slice(-2000)}`,
    );
    await new Promise((r) => setTimeout(r, 500));

    opts.log('starting haproxy pairs');
    const files = await writeHaproxyConfigs({
      dir: hapDir,
      caDir: join(ctlDir, 'ca'),
      trustDomain: 'cluster.local',
      clientIp: h2.ipv4,
      serverIp: h3.ipv4,
      nbthread: VMESH_PROXY_WORKERS,
      upstreamHttpPort: PORTS.directHttp,
      upstreamH2cPort: PORTS.directH2c,
      upstreamGrpcPort: PORTS.directGrpc,
      upstreamTcpPort: PORTS.directTcp,
      logger: opts.logger,
    });
    const hap: Record<HaproxyMode, ProxyProc[]> = { plain: [], mtls: [] };
    for (const mode of ['plain', 'mtls'] as const) {
      for (const [side, host, cfg] of [
        ['server', h3, files.server[mode]],
        ['client', h2, files.client[mode]],
      ] as const) {
        const p = host.spawn('haproxy', ['-db', '-f', cfg]);
        await new Promise((r) => setTimeout(r, 300));
        if (p.child.exitCode !== null) throw new Error(`haproxy ${side} ${mode} exited: ${p.stderr()}`);
        hap[mode].push({ host: side, pid: programPid(p.pid, /^haproxy$/), name: `haproxy-${side}` });
      }
    }
    const agentPid = (i: number) => programPid(agents[i]?.pid ?? -1, /^node/);
    const paths: BenchPath[] = [
      {
        name: 'direct',
        httpUrl: `http://${h3.ipv4}:${PORTS.directHttp}/`,
        h2Url: `http://${h3.ipv4}:${PORTS.directH2c}/`,
        grpcTarget: `${h3.ipv4}:${PORTS.directGrpc}`,
        tcp: { host: h3.ipv4, port: PORTS.directTcp },
        proxies: [],
        expectPeer: h2.ipv4,
      },
      ...(['plain', 'mtls'] as const).map(
        (mode): BenchPath => ({
          name: `haproxy-${mode}`,
          httpUrl: `http://127.0.0.1:${CLIENT_PORTS[mode].http}/`,
          h2Url: `http://127.0.0.1:${CLIENT_PORTS[mode].h2}/`,
          grpcTarget: `127.0.0.1:${CLIENT_PORTS[mode].h2}`,
          tcp: { host: '127.0.0.1', port: CLIENT_PORTS[mode].tcp },
          proxies: hap[mode],
          expectPeer: '127.0.0.1',
        }),
      ),
      {
        name: 'vmesh',
        httpUrl: `http://${SERVICE}.default.mesh:${PORTS.meshHttp}/`,
        h2Url: `http://${SERVICE}.default.mesh:${PORTS.meshH2c}/`,
        grpcTarget: `${SERVICE}.default.mesh:${PORTS.meshGrpc}`,
        tcp: { host: `${SERVICE}.default.mesh`, port: PORTS.meshTcp },
        proxies: [
          { host: 'client', pid: agentPid(0), name: 'agent+workers' },
          { host: 'server', pid: agentPid(1), name: 'agent+workers' },
        ],
        expectPeer: '127.0.0.6',
      },
    ];
    for (const p of paths) await checkPath(h2, p);
    return { lab, client: h2, server: h3, paths, agents, dirs, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** One request by the path's URL: 200, 1 KiB, and the peer the upstream saw is the one this path must produce. */
async function checkPath(client: LabHost, p: BenchPath): Promise<void> {
  const script = `require('http').get(${JSON.stringify(p.httpUrl)},r=>{let n=0;r.on('data',c=>n+=c.length);r.on('end',()=>console.log(JSON.stringify({s:r.statusCode,n,peer:r.headers['x-peer']})))}).on('error',e=>console.log(JSON.stringify({e:String(e)})))`;
  const out = JSON.parse((await client.execOk(node, ['-e', script], { ...APP, timeoutMs: 10_000 })).trim()) as {
    s?: number;
    n?: number;
    peer?: string;
    e?: string;
  };
  if (out.s !== 200 || out.n !== 1024 || out.peer !== p.expectPeer) {
    throw new Error(`path ${p.name} (${p.httpUrl}) is not what it should be: ${JSON.stringify(out)}, expected peer ${p.expectPeer}`);
  }
  // The same over HTTP/2 with prior knowledge, as h2load speaks it.
  const h2 = await client.exec(
    'curl',
    ['-sS', '--http2-prior-knowledge', '-o', '/dev/null', '-D', '-', '-w', 'size=%{size_download}\n', p.h2Url],
    {
      ...APP,
      timeoutMs: 10_000,
    },
  );
  const peer = /^x-peer: (.*)\r$/m.exec(h2.stdout)?.[1];
  if (h2.code !== 0 || !/^HTTP\/2 200/m.test(h2.stdout) || !/size=1024/.test(h2.stdout) || peer !== p.expectPeer) {
    throw new Error(
      `path ${p.name} (${p.h2Url}) over h2c is not what it should be: ${h2.stdout}${h2.stderr}, expected peer ${p.expectPeer}`,
    );
  }
  await checkGrpc(client, p.grpcTarget);
}
