/**
 * The agent side of `npm run bench:ca`'s end-to-end part, in its own process (forked by run.ts): joins the
 * controller as each bench host (a real Join, so it holds real host certificates), makes every key and CSR
 * before the timed window (timed apart: that is agent work, not signing), then runs SignWorkload calls over one
 * mutual-TLS channel per host with `inflight` calls in flight in all. Speaks to run.ts over IPC:
 *   <- { start: Setup }  -> { prepared: { keygen } }
 *   <- { go: true }      -> { warmedUp }  (a warm-up outside the window)
 *   <- { window: true }  -> { done: { lat, seconds, errors, cpuSeconds } }  (the timed calls; cpu of this process)
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { SignWorkloadResponse__Output } from '../../../src/api/controller-proto.js';
import { controllerServiceClient } from '../../../src/api/controller-proto.js';
import { gatherHostFacts, joinController } from '../../../src/ca/index.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';

export interface Setup {
  readonly grpcAddress: string;
  readonly hosts: ReadonlyArray<{ name: string; token: string }>;
  readonly workloadsPerHost: number;
  readonly rpcs: number;
  readonly warmup: number;
  readonly inflight: number;
}

interface Job {
  readonly channel: number;
  readonly serviceAccount: string;
  readonly csrPem: string;
  readonly spki: Buffer;
}

type Client = grpc.Client & {
  SignWorkload(
    req: { namespace: string; serviceAccount: string; csrPem: string },
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r?: SignWorkloadResponse__Output) => void,
  ): void;
};

async function prepare(s: Setup) {
  const facts = await gatherHostFacts();
  const joined = [];
  for (const h of s.hosts) joined.push(await joinController({ address: s.grpcAddress, token: h.token, hostName: h.name, facts }));
  const Controller = controllerServiceClient();
  // A local subchannel pool each: otherwise grpc-js would share one connection between clients of one target.
  const clients = joined.map(
    (h) =>
      new Controller(
        s.grpcAddress,
        grpc.credentials.createSsl(Buffer.from(h.trustBundlePem), Buffer.from(h.keyPem), Buffer.from(h.certPem)),
        { 'grpc.use_local_subchannel_pool': 1 },
      ) as unknown as Client,
  );
  const total = s.rpcs + s.warmup;
  const t0 = process.hrtime.bigint();
  const jobs: Job[] = Array.from({ length: total }, (_, i) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const sa = `sa${Math.floor(i / s.hosts.length) % s.workloadsPerHost}`;
    return {
      channel: i % s.hosts.length,
      serviceAccount: sa,
      csrPem: derToPem(buildCsr(privateKey, `${sa}.default`), 'CERTIFICATE REQUEST'),
      spki: publicKey.export({ type: 'spki', format: 'der' }),
    };
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { clients, jobs, bundle: joined[0]?.trustBundlePem ?? '', keygen: { count: total, seconds, perSecond: total / seconds } };
}

function call(c: Client, j: Job): Promise<SignWorkloadResponse__Output> {
  return new Promise((resolve, reject) =>
    c.SignWorkload(
      { namespace: 'default', serviceAccount: j.serviceAccount, csrPem: j.csrPem },
      { deadline: Date.now() + 30_000 },
      (e, r) => (e || !r ? reject(e ?? new Error('no response')) : resolve(r)),
    ),
  );
}

async function run(clients: Client[], jobs: Job[], inflight: number) {
  const lat: number[] = [];
  const errors = new Map<string, number>();
  const answers: Array<{ job: Job; res: SignWorkloadResponse__Output }> = [];
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (next < jobs.length) {
      const j = jobs[next++] as Job;
      const s = process.hrtime.bigint();
      try {
        const res = await call(clients[j.channel] as Client, j);
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
        if (answers.length < 20) answers.push({ job: j, res });
      } catch (e) {
        const k = (e as Error).message.slice(0, 120);
        errors.set(k, (errors.get(k) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, jobs.length) }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { lat, errors, answers, seconds };
}

/** The answers are real certificates for the CSR's key and the asked identity, chained to the bundle. */
function checkAnswers(answers: Array<{ job: Job; res: SignWorkloadResponse__Output }>, bundlePem: string): void {
  const root = new X509Certificate(bundlePem);
  for (const { job, res } of answers) {
    const leaf = new X509Certificate(res.certChainPem);
    const want = `spiffe://cluster.local/ns/default/sa/${job.serviceAccount}`;
    if (!leaf.verify(root.publicKey)) throw new Error('a signed certificate does not verify against the trust bundle');
    if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(job.spki)) throw new Error('a signed certificate has another key');
    if (res.spiffeId !== want || !leaf.subjectAltName?.includes(want)) throw new Error(`a signed certificate names ${res.spiffeId}`);
  }
}

let state: Awaited<ReturnType<typeof prepare>> | undefined;
let setup: Setup | undefined;
process.on('message', (m: { start?: Setup; go?: true }) => {
  void (async () => {
    if (m.start) {
      setup = m.start;
      state = await prepare(setup);
      process.send?.({ prepared: { keygen: state.keygen } });
    }
    if (m.go && state && setup) {
      const warm = await run(state.clients, state.jobs.slice(0, setup.warmup), setup.inflight);
      if (warm.errors.size > 0) throw new Error(`warm-up failed: ${JSON.stringify([...warm.errors])}`);
      process.send?.({ warmedUp: true });
      await new Promise<void>((r) => process.once('message', () => r()));
      const cpu0 = process.cpuUsage();
      const r = await run(state.clients, state.jobs.slice(setup.warmup), setup.inflight);
      const cpu = process.cpuUsage(cpu0);
      checkAnswers(r.answers, state.bundle);
      for (const c of state.clients) c.close();
      process.send?.({
        done: { lat: r.lat, seconds: r.seconds, errors: Object.fromEntries(r.errors), cpuSeconds: (cpu.user + cpu.system) / 1e6 },
      });
    }
  })().catch((e: unknown) => {
    process.send?.({ failed: (e as Error).stack ?? String(e) });
  });
});
process.send?.({ up: true });
