/**
 * Hostile requests from an authenticated host (a real host certificate, so every check past authentication is
 * reached): SignWorkload, ReportHealth and Renew, typed and as raw bytes, from a process of their own so that
 * encoding them does not count against the controller's event loop. Usage: host-rpc-abuser.ts JSON with
 * address, caPem, keyPem, certPem, goodCsr, namespace, serviceAccount, cases, seed. Prints one JSON line: the
 * cases answered against the rules, per RPC counts, and the slowest answer.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient } from '../../src/api/controller-proto.js';
import { Limits } from '../../src/lib/limits.js';
import { pool, type Rng, rng } from './abuse.js';

const BEGIN = '-----BEGIN CERTIFICATE REQUEST-----';
type Outcome = { ok: true } | { ok: false; code: grpc.status; details: string };
const args = JSON.parse(process.argv[2] ?? '{}') as {
  address: string;
  caPem: string;
  keyPem: string;
  certPem: string;
  goodCsr: string;
  namespace: string;
  serviceAccount: string;
  cases: number;
  seed: number;
};
const creds = grpc.credentials.createSsl(Buffer.from(args.caPem), Buffer.from(args.keyPem), Buffer.from(args.certPem));
const Client = controllerServiceClient();
type Fn = (req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void;
const typed = new Client(args.address, creds) as unknown as Record<string, Fn>;
const client = new grpc.Client(args.address, creds);
const done = (resolve: (o: Outcome) => void) => (e: grpc.ServiceError | null) =>
  resolve(e ? { ok: false, code: e.code, details: e.details } : { ok: true });
const raw = (method: string, bytes: Buffer): Promise<Outcome> =>
  new Promise((resolve) =>
    client.makeUnaryRequest(
      `/vmesh.v1.Controller/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      { deadline: Date.now() + 20_000 },
      done(resolve),
    ),
  );
const call = (method: string, req: object): Promise<Outcome> =>
  new Promise((resolve) => (typed[method] as Fn).call(typed, req, { deadline: Date.now() + 20_000 }, done(resolve)));

const csr = (r: Rng) =>
  r.pick([
    () => BEGIN.repeat(Math.ceil(r.size(1 << 20) / BEGIN.length)),
    () => args.goodCsr.slice(0, r.int(0, args.goodCsr.length - 2)),
    () => `${args.goodCsr}${args.goodCsr}`,
    () => args.goodCsr.replace(/[A-Za-z]/, '!'),
    () => r.text(r.size(1 << 20)),
    () => `${BEGIN}\n${r.bytes(r.size(Limits.csrPemBytes)).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`,
    () => '',
  ])();
const name = (r: Rng, real: string) => r.pick([real, real, '', r.text(r.size(100_000)), real.toUpperCase(), `${real}\u0000`, '../..', '*']);
/** For items of long lists: odd but small, so a list's size comes from its length. */
const short = (r: Rng, real: string) => r.pick([real, real, '', r.text(r.int(0, 300)), real.toUpperCase(), `${real}\u0000`, '../..', '*']);
const u64 = (r: Rng) => r.pick(['0', '18446744073709551615', String(r.int(0, 1e9)), '9007199254740993']);

interface Case {
  readonly rpc: string;
  readonly what: string;
  readonly send: () => Promise<Outcome>;
  /** Answers allowed for it: ok, or one of these coded refusals. */
  readonly ok: boolean;
  readonly codes: RegExp;
}

function hostile(r: Rng, i: number): Case {
  const rpc = ['SignWorkload', 'ReportHealth', 'Renew'][i % 3] as string;
  if (i % 10 === 9) {
    return {
      rpc,
      what: `${rpc} raw bytes`,
      send: () => raw(rpc, r.bytes(r.size(64 * 1024))),
      ok: true,
      codes: /^VMESH_ERR_(?!INTERNAL)[A-Z_]+: |deserializ/i,
    };
  }
  if (rpc === 'SignWorkload') {
    const req = { namespace: name(r, args.namespace), serviceAccount: name(r, args.serviceAccount), csrPem: csr(r) };
    return {
      rpc,
      what: `SignWorkload ns ${req.namespace.length}, sa ${req.serviceAccount.length}, csr ${req.csrPem.length}`,
      send: () => call(rpc, req),
      ok: false,
      codes: /^VMESH_ERR_(FORBIDDEN|CSR_INVALID|RATE_LIMITED): /,
    };
  }
  if (rpc === 'Renew') {
    const req = { csrPem: csr(r) };
    return {
      rpc,
      what: `Renew csr ${req.csrPem.length}`,
      send: () => call(rpc, req),
      ok: false,
      codes: /^VMESH_ERR_(CSR_INVALID|RATE_LIMITED): /,
    };
  }
  // One list of each report is long at a time (up to a little over the 4 MiB message cap), the rest short:
  // oversized as a whole, without the generator building hundreds of megabytes.
  const long = r.int(0, 3);
  const many = <T>(which: number, max: number, make: () => T) => Array.from({ length: which === long ? r.size(max) : r.int(0, 3) }, make);
  const req = {
    workloads: many(0, 40_000, () => ({
      namespace: short(r, 'default'),
      name: short(r, 'w'),
      healthy: r.next() < 0.5,
      detail: r.text(r.int(0, 100)),
    })),
    trustBundleSha256: r.pick(['', 'ab'.repeat(32), r.text(r.size(1 << 20))]),
    edges: many(1, 10_000, () => ({
      reporter: r.pick(['source', 'destination', r.text(r.int(0, 300))]),
      sourceWorkload: r.text(r.int(0, 300)),
      destinationService: r.text(r.int(0, 300)),
      security: r.pick(['mutual_tls', 'none', r.text(20)]),
      protocol: r.pick(['http', 'tcp', r.text(20)]),
      requests: u64(r),
      errors: u64(r),
      durationCounts: Array.from({ length: r.int(0, 40) }, () => u64(r)),
      durationBounds: Array.from({ length: r.int(0, 40) }, () => r.pick([0, -1, 1e308, Number.NaN, 5])),
      tcpSentBytes: u64(r),
    })),
    serving: many(2, 40_000, () => ({
      spiffeId: r.pick([`spiffe://cluster.local/ns/default/sa/${r.text(8)}`, r.text(r.int(0, 200))]),
      uid: r.int(0, 2 ** 32 - 1),
      hasUid: true,
    })),
  };
  return {
    rpc,
    what: `ReportHealth ${req.workloads.length} workloads, ${req.edges.length} edges, ${req.serving.length} served, bundle ${req.trustBundleSha256.length}`,
    send: () => call(rpc, req),
    ok: true,
    codes: /^VMESH_ERR_(LIMIT_EXCEEDED|INVALID_RESOURCE): /,
  };
}

const r = rng(args.seed);
// This process's own loop: a late answer is only the controller's fault if this loop was turning.
const ownLoop = monitorEventLoopDelay({ resolution: 10 });
ownLoop.enable();
const failures: string[] = [];
const slowest = { ms: 0, what: '' };
const counts: Record<string, { ok: number; refused: number; transport: number }> = {};
const TRANSPORT = new Set([grpc.status.RESOURCE_EXHAUSTED, grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);
await pool(args.cases, 16, async (i) => {
  const c = hostile(r, i);
  const t0 = Date.now();
  const out = await c.send();
  const ms = Date.now() - t0;
  if (ms > slowest.ms) Object.assign(slowest, { ms, what: c.what });
  const n = counts[c.rpc] ?? { ok: 0, refused: 0, transport: 0 };
  counts[c.rpc] = n;
  if (out.ok) {
    n.ok++;
    if (!c.ok) failures.push(`case ${i} (${c.what}) was accepted`);
  } else if (!out.details.startsWith('VMESH_ERR_') && TRANSPORT.has(out.code)) {
    // The server protecting itself from this connection: a message over the cap refused unread, or the
    // connection's flow control or HTTP/2 flood limits (RST floods get ENHANCE_YOUR_CALM) ending or stalling
    // this peer's streams. Counted, not failed: other hosts must keep being served, which the test asserts.
    n.transport++;
  } else {
    n.refused++;
    if (!c.codes.test(out.details) || out.details.includes('\n'))
      failures.push(`case ${i} (${c.what}): ${grpc.status[out.code]} ${out.details.slice(0, 300)}`);
  }
});
client.close();
(typed as unknown as grpc.Client).close();
ownLoop.disable();
const abuserLoopMaxMs = ownLoop.max / 1e6;
console.log(
  JSON.stringify({
    failures: failures.slice(0, 20),
    failed: failures.length,
    counts,
    slowest,
    abuserLoopMaxMs,
    rssMb: process.memoryUsage().rss >> 20,
  }),
);
