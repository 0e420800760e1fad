/**
 * A quick single-proxy measurement for working on the data path (not the comparison bench: no lab, no agent, no
 * HAProxy). This process runs the real HTTP handler and TCP proxy with the real cluster manager on loopback, in front
 * of the bench upstream (upstream.mjs, its own process); wrk and the bulk sender load it. It prints the proxy's CPU
 * per request and per GB, which move less with a noisy machine than throughput does. --h2 adds h2load runs with
 * the same 100 requests in flight: HTTP/2 both sides (h2c in, a cluster with http2 out), HTTP/2 in and HTTP/1.1
 * out, and HTTP/1.1 both sides.
 *
 *   node --import tsx test/bench/proxy/micro.ts [--seconds 5] [--rounds 3] [--bulk-mib 1024] [--cpu-prof DIR] [--h2]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { socketAddr, toLocal, toOrigDst, toRemote } from '../../../src/lib/addr.js';
import { createLogger } from '../../../src/lib/logger.js';
import { ProxyClusterManager } from '../../../src/proxy/cluster/cluster-manager.js';
import { createHttpHandler } from '../../../src/proxy/http/index.js';
import type { ListenerConfig, NetworkAction } from '../../../src/proxy/proxy-config.js';
import type { ConnectionContext } from '../../../src/proxy/runtime-types.js';
import { proxyTcp } from '../../../src/proxy/tcp/tcp-proxy.js';
import { cluster, forward, httpAction, noSecrets, prefix, proxyConfig, route, table, vhost } from '../../unit/proxy/http/http-fixture.js';

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    'bulk-mib': { type: 'string', default: '1024' },
    'cpu-prof': { type: 'string' },
    connections: { type: 'string', default: '50' },
    h2: { type: 'boolean', default: false },
  },
});
const HTTP_UP = 18_081;
const TCP_UP = 19_001;
const H2C_UP = 18_083;
const logger = createLogger({ level: 'silent' });
/** What an outbound route gets without a VirtualService (Istio's defaults as vmesh translates them): no timeout, 2 retries. */
const OUTBOUND_DEFAULTS = {
  timeoutMs: 0,
  retry: {
    on: new Set(['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes']),
    retriableStatusCodes: [503],
    numRetries: 2,
    backoffBaseMs: 25,
    backoffMaxMs: 250,
  },
};
const LISTENER: ListenerConfig = {
  name: 'micro',
  address: '127.0.0.1',
  port: 0,
  bindToPort: true,
  useOriginalDst: false,
  inspectTls: false,
  filterChains: [],
};

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 1 << 20 }, (e, out, err) => (e ? reject(new Error(`${cmd}: ${e.message} ${err}`)) : resolve(out))),
  );
}

function listen(onSocket: (s: Socket) => void): Promise<number> {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, onSocket);
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
}

function context(socket: Socket, action: NetworkAction, cfg: ReturnType<typeof proxyConfig>): ConnectionContext {
  const local = toLocal(socketAddr(socket.localAddress ?? '', socket.localPort ?? 0));
  return {
    socket,
    listener: LISTENER,
    chain: { name: 'c', match: { serverNames: [], applicationProtocols: [], prefixRanges: [] }, action },
    remote: toRemote(socketAddr(socket.remoteAddress ?? '', socket.remotePort ?? 0)),
    local,
    originalDst: toOrigDst(local),
    tls: false,
    config: cfg,
  };
}

async function main(): Promise<void> {
  const up: ChildProcess = spawn(
    process.execPath,
    [join(import.meta.dirname, 'upstream.mjs'), String(HTTP_UP), String(TCP_UP), String(H2C_UP)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise((r) => up.stdout?.once('data', r));
  const cfg = proxyConfig(
    [cluster('web', [HTTP_UP]), cluster('web2', [H2C_UP], { http2: true }), cluster('tcp', [TCP_UP])],
    [
      table('r', [
        vhost(
          'v',
          ['*'],
          [route('h2', prefix('/h2'), forward('web2', OUTBOUND_DEFAULTS)), route('all', prefix('/'), forward('web', OUTBOUND_DEFAULTS))],
        ),
      ]),
    ],
  );
  const clusters = new ProxyClusterManager({ secrets: noSecrets, logger, ownPorts: () => [] });
  clusters.update(cfg);
  const http = createHttpHandler({ clusters, config: () => cfg, logger });
  const hAction = httpAction();
  const tAction: Extract<NetworkAction, { kind: 'tcp' }> = {
    kind: 'tcp',
    clusters: [{ name: 'tcp', weight: 1 }],
    rbac: [],
    statPrefix: 't',
  };
  const httpPort = await listen((s) => http.handle(context(s, hAction, cfg), hAction));
  const tcpPort = await listen((s) => proxyTcp(context(s, tAction, cfg), tAction, { clusters, logger }));

  let session: Session | undefined;
  if (opt['cpu-prof']) {
    session = new Session();
    session.connect();
    const post = (m: string, p?: object) => new Promise<void>((r, j) => session?.post(m, p ?? {}, (e) => (e ? j(e) : r())));
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 100 });
    await post('Profiler.start');
  }
  const rows: string[] = [];
  for (let round = 1; round <= Number(opt.rounds); round++) {
    let line = `round ${round}:`;
    if (Number(opt.seconds) > 0) {
      const c0 = process.cpuUsage();
      const out = await run('wrk', ['-t1', `-c${opt.connections}`, `-d${opt.seconds}s`, `http://127.0.0.1:${httpPort}/`]);
      const c1 = process.cpuUsage(c0);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const n = Number(/(\d+) requests in/.exec(out)?.[1]);
      const bad = /Non-2xx|Socket errors/.test(out) ? ' ERRORS' : '';
      const us = (c1.user + c1.system) / n;
      line += ` http ${rps.toFixed(0)} rps, ${us.toFixed(1)} µs/req (user ${(c1.user / n).toFixed(1)}, sys ${(c1.system / n).toFixed(1)})${bad};`;
    }
    if (opt.h2) {
      const base = `http://127.0.0.1:${httpPort}`;
      for (const [label, args] of [
        ['h2>h2', ['-c10', '-m10', `${base}/h2`]],
        ['h2>h1', ['-c10', '-m10', `${base}/`]],
        ['h1>h1', ['--h1', '-c100', `${base}/`]],
      ] as const) {
        const c0 = process.cpuUsage();
        const out = await run('h2load', ['-D', opt.seconds as string, ...args]);
        const c1 = process.cpuUsage(c0);
        const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1]);
        const m = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out);
        const n = Number(m?.[1]);
        const bad = m?.[1] !== m?.[2] ? ' ERRORS' : '';
        line += ` ${label} ${rps.toFixed(0)} rps ${((c1.user + c1.system) / n).toFixed(1)} µs/req${bad};`;
      }
    }
    if (Number(opt['bulk-mib']) > 0) {
      const b0 = process.cpuUsage();
      const script = join(import.meta.dirname, 'bulk-send.mjs');
      const out = await run(process.execPath, [script, '127.0.0.1', String(tcpPort), opt['bulk-mib'] as string, '60000']);
      const b1 = process.cpuUsage(b0);
      const bulk = JSON.parse(out.trim().split('\n').pop() as string) as { mbps: number; bytes: number };
      const gb = bulk.bytes / 1e9;
      line += ` tcp ${bulk.mbps.toFixed(0)} MB/s, ${((b1.user + b1.system) / 1e6 / gb).toFixed(2)} CPU s/GB (user ${(b1.user / 1e6 / gb).toFixed(2)})`;
    }
    rows.push(line);
    process.stderr.write(`${rows[rows.length - 1]}\n`);
  }
  if (session) {
    const prof = await new Promise<unknown>((r, j) => session?.post('Profiler.stop', (e, p) => (e ? j(e) : r(p.profile))));
    const file = join(opt['cpu-prof'] as string, `micro-${Date.now()}.cpuprofile`);
    writeFileSync(file, JSON.stringify(prof));
    process.stderr.write(`profile: ${file}\n`);
  }
  http.close();
  clusters.close();
  up.kill();
  process.exit(0);
}

await main();
