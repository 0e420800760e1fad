import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient } from '../../../src/api/controller-proto.js';
import { gatherHostFacts, type HostCredentials, joinController, signWorkloadCert } from '../../../src/ca/index.js';
import { buildCsr, derToPem } from '../../../src/ca/x509.js';
import { eventLoopProbe, fuzzCases, fuzzSeed, MAX_BLOCK_MS } from '../../support/abuse.js';
import { startTestController, type TestController } from '../../support/controller-harness.js';

/*
 * What a host with a real certificate can send: SignWorkload, ReportHealth and Renew, generated hostile (oversized,
 * truncated, wrong wire types, valid but extreme) from another process. Each must get an answer or a one-line
 * coded refusal, another host must keep being served, and the controller's event loop must keep turning.
 */

const CASES = fuzzCases(900);
const SEED = fuzzSeed();
const ABUSER = join(import.meta.dirname, '..', '..', 'support', 'host-rpc-abuser.ts');

describe(`host RPCs under abuse (${CASES} cases, VMESH_FUZZ_SEED=${SEED})`, () => {
  let ctl: TestController;
  const hosts: Record<string, HostCredentials> = {};

  before(async () => {
    ctl = await startTestController();
    const facts = await gatherHostFacts();
    for (const h of ['abuser', 'good']) {
      const token = (await ctl.cli(['token', 'create', '--host', h])).stdout.trim();
      hosts[h] = await joinController({ address: ctl.grpcAddress, token, hostName: h, facts });
      const r = await ctl.cli([
        'workload',
        'register',
        '--name',
        `w-${h}`,
        '--service',
        `svc-${h}`,
        '--host',
        h,
        '--address',
        '198.18.0.9',
        '--port',
        'http:8080',
        '--service-account',
        `sa-${h}`,
        '--no-wait',
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(async () => {
    await ctl?.stop();
  });

  test('every hostile request gets an answer or a coded one-line refusal; another host is served; the loop keeps turning', async () => {
    const abuser = hosts.abuser as HostCredentials;
    const good = hosts.good as HostCredentials;
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const goodCsr = derToPem(buildCsr(privateKey, 'x'), 'CERTIFICATE REQUEST');
    const probe = eventLoopProbe();
    const started = Date.now();
    const args = {
      address: ctl.grpcAddress,
      caPem: ctl.caPem,
      keyPem: abuser.keyPem,
      certPem: abuser.certPem,
      goodCsr,
      namespace: 'default',
      serviceAccount: 'sa-abuser',
      cases: CASES,
      seed: SEED,
    };
    const child = spawn(process.execPath, ['--import', 'tsx', ABUSER, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    let running = true;
    const exited = new Promise<number | null>((res) => child.on('close', res)).finally(() => {
      running = false;
    });
    // The other host keeps reporting and getting certificates meanwhile.
    const Client = controllerServiceClient();
    const client = new Client(
      ctl.grpcAddress,
      grpc.credentials.createSsl(Buffer.from(ctl.caPem), Buffer.from(good.keyPem), Buffer.from(good.certPem)),
    ) as unknown as grpc.Client & { ReportHealth: (req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void };
    let served = 0;
    try {
      while (running) {
        await new Promise<void>((resolve, reject) =>
          client.ReportHealth(
            { workloads: [{ namespace: 'default', name: 'w-good', healthy: true }] },
            { deadline: Date.now() + 10_000 },
            (e) => (e ? reject(e) : resolve()),
          ),
        );
        await signWorkloadCert({ address: ctl.grpcAddress, host: good, namespace: 'default', serviceAccount: 'sa-good' });
        served++;
        await new Promise((res) => setTimeout(res, 200));
      }
    } finally {
      client.close();
    }
    const code = await exited;
    const loop = probe.stop();
    assert.equal(code, 0, out);
    const summary = JSON.parse(out.trim().split('\n').pop() ?? '{}') as {
      failures: string[];
      failed: number;
      counts: Record<string, unknown>;
      slowest: { ms: number; what: string };
      abuserLoopMaxMs: number;
    };
    console.log(
      `abuse-host-rpcs: ${CASES} cases in ${Date.now() - started} ms; ${JSON.stringify(summary.counts)}; event loop max ${loop.maxMs.toFixed(1)} ms (late by up to ${loop.rawMaxMs.toFixed(0)} ms), p99 ${loop.p99Ms.toFixed(1)} ms; slowest answer ${summary.slowest.ms} ms (${summary.slowest.what}; the abuser's own loop blocked up to ${summary.abuserLoopMaxMs.toFixed(0)} ms); the good host served ${served} times meanwhile`,
    );
    assert.deepEqual(summary.failures, [], `${summary.failed} cases broke the rules`);
    assert.ok(served > 0);
    assert.ok(loop.maxMs < MAX_BLOCK_MS, `the event loop blocked for ${loop.maxMs.toFixed(0)} ms`);
    // The abuser's host record is still whole and the controller answers for it.
    const h = await ctl.api('GET', '/v1/hosts');
    assert.equal(h.status, 200);
    assert.ok(JSON.stringify(h.body).includes('"abuser"'));
  });
});
