/**
 * Certificate signing benchmark (a measurement, not a test): how many workload CSRs the CA signs per second.
 *   1. the CA core on one core: verify each CSR's self-signature and sign an SVID (DER template + node:crypto);
 *   2. end to end: SignWorkload over mutual-TLS gRPC against a running controller (host authentication, the
 *      registration check, signing), N calls in flight.
 * Prints a table, writes test/bench/results/ca-<timestamp>.json.
 *
 *   npm run bench:ca                       5000 CSRs for the core, 2000 RPCs with 32 in flight
 *   npm run bench:ca -- --csrs 1000 --rpcs 500
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient } from '../../../src/api/controller-proto.js';
import { CertificateAuthority, gatherHostFacts, joinController, signWorkloadCert } from '../../../src/ca/index.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';
import { createLogger } from '../../../src/lib/logger.js';
import { startTestController } from '../../support/controller-harness.js';

const { values: opt } = parseArgs({
  options: {
    csrs: { type: 'string', default: '5000' },
    rpcs: { type: 'string', default: '2000' },
    inflight: { type: 'string', default: '32' },
  },
});
const CSRS = Number(opt.csrs);
const RPCS = Number(opt.rpcs);
const INFLIGHT = Number(opt.inflight);
const log = (m: string) => process.stderr.write(`[bench:ca] ${m}\n`);

async function core(): Promise<{ perSecond: number; seconds: number; cpuSeconds: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-bench-ca-'));
  try {
    const ca = await CertificateAuthority.loadOrCreate({ dir, trustDomain: 'cluster.local', logger: createLogger({ level: 'silent' }) });
    log(`making ${CSRS} CSRs (agent side, not timed)`);
    const csrs = Array.from({ length: CSRS }, (_, i) => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      return { pem: derToPem(buildCsr(privateKey, `w${i}`), 'CERTIFICATE REQUEST'), sa: `sa-${i % 100}` };
    });
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (const c of csrs) ca.signCsr(c.pem, { uris: [`spiffe://cluster.local/ns/default/sa/${c.sa}`], ttlSeconds: 86400, usage: 'both' });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    return { perSecond: CSRS / seconds, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function endToEnd(): Promise<{ perSecond: number; seconds: number; p50Ms: number; p99Ms: number; failed: number }> {
  // One host signs everything here: lift its per-host rate, which this measures past.
  const ctl = await startTestController({ flags: { signRate: '1000000', signBurst: '1000000' } });
  try {
    const token = (await ctl.cli(['token', 'create', '--host', 'bench-host'])).stdout.trim();
    const host = await joinController({ address: ctl.grpcAddress, token, hostName: 'bench-host', facts: await gatherHostFacts() });
    for (let i = 0; i < 10; i++) {
      await ctl.cli([
        'workload',
        'register',
        '--name',
        `w${i}`,
        '--service',
        `svc${i}`,
        '--service-account',
        `sa${i}`,
        '--address',
        '198.18.0.9',
        '--port',
        'http:80',
        '--host',
        'bench-host',
        '--no-wait',
      ]);
    }
    log(`${RPCS} SignWorkload calls, ${INFLIGHT} in flight on one channel`);
    const Controller = controllerServiceClient();
    const client = new Controller(
      ctl.grpcAddress,
      grpc.credentials.createSsl(Buffer.from(host.trustBundlePem), Buffer.from(host.keyPem), Buffer.from(host.certPem)),
    );
    const lat: number[] = [];
    let failed = 0;
    let next = 0;
    const t0 = process.hrtime.bigint();
    const worker = async () => {
      while (next < RPCS) {
        const i = next++;
        const s = process.hrtime.bigint();
        try {
          await signWorkloadCert({ address: ctl.grpcAddress, host, namespace: 'default', serviceAccount: `sa${i % 10}`, client });
          lat.push(Number(process.hrtime.bigint() - s) / 1e6);
        } catch {
          failed++;
        }
      }
    };
    await Promise.all(Array.from({ length: INFLIGHT }, worker));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    client.close();
    lat.sort((a, b) => a - b);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
    return { perSecond: (RPCS - failed) / seconds, seconds, p50Ms: q(0.5), p99Ms: q(0.99), failed };
  } finally {
    await ctl.stop();
  }
}

const startedAt = new Date();
const c = await core();
const e = await endToEnd();
const r1 = (n: number) => Math.round(n * 10) / 10;
const rows = [
  ['CA core (verify CSR + sign SVID), one core', `${Math.round(c.perSecond)}/s`, `${r1((c.cpuSeconds / CSRS) * 1e6)} us CPU each`, '-'],
  [
    `SignWorkload over mTLS gRPC, ${INFLIGHT} in flight (client and controller on this machine)`,
    `${Math.round(e.perSecond)}/s`,
    `p50 ${r1(e.p50Ms)} ms, p99 ${r1(e.p99Ms)} ms`,
    String(e.failed),
  ],
];
const widths = [0, 1, 2, 3].map((i) => Math.max(...[['path', 'rate', 'cost', 'failed'], ...rows].map((r) => String(r[i]).length)));
for (const r of [['path', 'rate', 'cost', 'failed'], ...rows]) console.log(r.map((x, i) => String(x).padEnd(widths[i] ?? 0)).join('  '));
console.log(`target: >= 500 CSRs/s on one core (Consul's default limit is 50/s); core ${c.perSecond >= 500 ? 'meets' : 'misses'} it`);
const dir = join(import.meta.dirname, '..', 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `ca-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      benchmark: 'ca',
      startedAt,
      finishedAt: new Date(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model },
      core: c,
      endToEnd: e,
    },
    null,
    2,
  ),
);
log(`wrote ${file}`);
