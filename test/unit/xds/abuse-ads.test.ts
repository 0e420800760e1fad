import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadControllerConfig } from '../../../src/config/controller.js';
import { type RunningController, startController } from '../../../src/controller/controller.js';
import { Limits } from '../../../src/lib/limits.js';
import { createLogger } from '../../../src/lib/logger.js';
import { adsServiceDefinition } from '../../../src/xds/protos.js';
import { eventLoopProbe, fuzzCases, fuzzSeed, MAX_BLOCK_MS } from '../../support/abuse.js';
import { apiRequest } from '../../support/controller-harness.js';

/*
 * ADS on the controller's TLS port (15012) and its plaintext port (15010, when enabled), as a hostile peer uses
 * them: streams without a certificate, streams that never speak, floods of streams from one address, and
 * thousands of generated requests (wrong types, huge name lists and NACK details, node-id changes, raw bytes).
 * No crash, every stream ends with a status, idle ones by the first-request deadline, and the event loop keeps
 * turning.
 */

const CASES = fuzzCases(1000);
const SEED = fuzzSeed();
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const ABUSER = join(import.meta.dirname, '..', '..', 'support', 'ads-abuser.ts');

interface Stream {
  readonly call: grpc.ClientDuplexStream<unknown, unknown>;
  readonly status: Promise<grpc.StatusObject>;
  readonly data: unknown[];
}

describe(`ADS under abuse (${CASES} cases, VMESH_FUZZ_SEED=${SEED})`, () => {
  let dataDir: string;
  let ctl: RunningController;
  let caPem: string;
  const clients: grpc.Client[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vmesh-abuse-ads-'));
    const cfg = loadControllerConfig({
      flags: { dataDir, listen: '127.0.0.1', grpcPort: '0', apiPort: '0', xdsPlaintextPort: '0' },
      env: {},
      file: {},
    });
    ctl = await startController(cfg, createLogger({ level: 'silent' }));
    caPem = await readFile(join(dataDir, 'ca', 'ca-cert.pem'), 'utf8');
  });
  after(async () => {
    for (const c of clients) c.close();
    await ctl?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const client = (port: number, tls: boolean): grpc.Client => {
    const c = new grpc.Client(
      `127.0.0.1:${port}`,
      tls ? grpc.credentials.createSsl(Buffer.from(caPem)) : grpc.credentials.createInsecure(),
      // One connection per client, so the per-connection and per-peer caps are what is exercised.
      { 'grpc.use_local_subchannel_pool': 1 },
    );
    clients.push(c);
    return c;
  };

  const open = (c: grpc.Client, mode: 'sotw' | 'delta', raw = false): Stream => {
    const m = adsServiceDefinition()[mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources'];
    const call = c.makeBidiStreamRequest<unknown, unknown>(
      m.path,
      raw ? (b: unknown) => b as Buffer : (m.requestSerialize as (v: unknown) => Buffer),
      (b: Buffer) => b,
    );
    const data: unknown[] = [];
    call.on('data', (d) => data.push(d));
    call.on('error', () => {});
    return { call, data, status: new Promise((resolve) => call.on('status', resolve)) };
  };

  const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
    Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms).unref())]);

  test('TLS port: ADS streams without a client certificate are refused as they open, before they send anything', async () => {
    const c = client(ctl.grpcPort, true);
    const streams = Array.from({ length: 200 }, (_, i) => open(c, i % 2 ? 'sotw' : 'delta'));
    const statuses = await within(Promise.all(streams.map((s) => s.status)), 5000, 'refusals');
    for (const st of statuses) {
      assert.equal(st.code, grpc.status.UNAUTHENTICATED, st.details);
      assert.match(st.details, /^VMESH_ERR_UNAUTHENTICATED: /);
    }
  });

  test('plaintext port: streams that never send are capped per peer and closed at the first-request deadline', async () => {
    const c = client(ctl.xdsPlaintextPort ?? 0, false);
    const n = Limits.pendingStreamsPerPeer + 8;
    const streams: Stream[] = [];
    for (let i = 0; i < n; i++) streams.push(open(c, i % 2 ? 'sotw' : 'delta'));
    const started = Date.now();
    const statuses = await within(Promise.all(streams.map((s) => s.status)), Limits.firstRequestMs + 5000, 'closing idle streams');
    const refused = statuses.filter((s) => s.code === grpc.status.RESOURCE_EXHAUSTED);
    const expired = statuses.filter((s) => s.code === grpc.status.DEADLINE_EXCEEDED);
    assert.equal(refused.length, n - Limits.pendingStreamsPerPeer, JSON.stringify(statuses.map((s) => s.details)));
    assert.equal(expired.length, Limits.pendingStreamsPerPeer);
    assert.match(refused[0]?.details ?? '', /over 32 unauthenticated xDS streams from 127\.0\.0\.1/);
    assert.match(expired[0]?.details ?? '', /no first DiscoveryRequest within 10000 ms/);
    const ms = Date.now() - started;
    assert.ok(ms >= Limits.firstRequestMs - 500, `closed after ${ms} ms, before the deadline`);
  });

  test('plaintext port: generated requests end each stream with a status or an answer; a good client keeps its answers; the loop keeps turning', async () => {
    const port = ctl.xdsPlaintextPort ?? 0;
    const good = open(client(port, false), 'sotw');
    good.call.write({ node: { id: 'good' }, type_url: CDS });
    const streams = Math.ceil(CASES / 4);
    const probe = eventLoopProbe();
    const started = Date.now();
    // The abuser is its own process: encoding its megabytes must not count against this (the controller's) loop.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', ABUSER, String(port), String(streams), String(SEED), String(Limits.plaintextGrpcMessageBytes)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const code = await within(new Promise<number | null>((res) => child.on('close', res)), 120_000, 'the abuser').catch((e) => {
      child.kill('SIGKILL');
      throw e;
    });
    const loop = probe.stop();
    assert.equal(code, 0, out);
    const summary = JSON.parse(out.trim().split('\n').pop() ?? '{}') as {
      statuses: Record<string, number>;
      answered: number;
      broken: string[];
    };
    console.log(
      `abuse-ads: ${streams} streams, ~${CASES} requests in ${Date.now() - started} ms; event loop max ${loop.maxMs.toFixed(1)} ms (late by up to ${loop.rawMaxMs.toFixed(0)} ms), p99 ${loop.p99Ms.toFixed(1)} ms; ended by status ${JSON.stringify(summary.statuses)}, answered ${summary.answered}`,
    );
    assert.deepEqual(summary.broken, [], 'every status is a known code on one line');
    assert.equal(summary.statuses.UNKNOWN, undefined);
    assert.ok(loop.maxMs < MAX_BLOCK_MS, `the event loop blocked for ${loop.maxMs.toFixed(0)} ms`);
    // The good client got its clusters and its stream is still open.
    assert.ok(good.data.length > 0, 'the good client was answered');
    const still = await Promise.race([good.status, new Promise<'open'>((res) => setTimeout(() => res('open'), 200))]);
    assert.equal(still, 'open');
    good.call.cancel();
    // Proxyless nodes whose streams ended are forgotten: only the good one is left.
    const token = (await readFile(ctl.adminTokenFile, 'utf8')).trim();
    const status = JSON.stringify((await apiRequest(`https://127.0.0.1:${ctl.apiPort}`, caPem, 'GET', '/v1/xds/status', { token })).body);
    assert.ok(!/proxyless~(?!good")/.test(status), `nodes of closed streams are still tracked: ${status.slice(0, 300)}`);
  });
});
