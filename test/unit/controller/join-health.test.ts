import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient, type HealthReportAck__Output as HealthReportAck } from '../../../src/api/controller-proto.js';
import type { HostFacts } from '../../../src/api/host-record.js';
import { gatherHostFacts, type HostCredentials, joinController, renewHostCert } from '../../../src/ca/index.js';
import { type ApiResponse, startTestController, type TestController, waitFor } from '../../support/controller-harness.js';

type Outcome = { ok: true; ack: HealthReportAck } | { ok: false; code: grpc.status; details: string };

/** One ReportHealth call with a plain grpc-js client, over mTLS when a key and certificate are given. */
async function reportHealth(
  address: string,
  creds: { trustBundlePem: string; keyPem?: string; certPem?: string },
  workloads: ReadonlyArray<{ name: string; healthy: boolean }>,
): Promise<Outcome> {
  const Client = controllerServiceClient();
  const client = new Client(
    address,
    grpc.credentials.createSsl(
      Buffer.from(creds.trustBundlePem),
      creds.keyPem ? Buffer.from(creds.keyPem) : null,
      creds.certPem ? Buffer.from(creds.certPem) : null,
    ),
  );
  type Fn = (req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: HealthReportAck) => void) => void;
  const fn = (client as unknown as Record<string, Fn>).ReportHealth as Fn;
  try {
    return await new Promise<Outcome>((resolve) => {
      const request = { workloads: workloads.map((w) => ({ namespace: 'default', name: w.name, healthy: w.healthy, detail: '' })) };
      fn.call(client, request, { deadline: Date.now() + 10_000 }, (e, r) =>
        resolve(e || !r ? { ok: false, code: e?.code ?? grpc.status.UNKNOWN, details: e?.details ?? '' } : { ok: true, ack: r }),
      );
    });
  } finally {
    client.close();
  }
}

function assertRefused(o: Outcome, code: grpc.status, vmeshCode: string): void {
  assert.ok(!o.ok, `refused, got ${JSON.stringify(o)}`);
  assert.equal(grpc.status[o.code], grpc.status[code], o.details);
  assert.ok(o.details.startsWith(`${vmeshCode}: `), o.details);
}

interface EndpointView {
  address: string;
  healthy: boolean;
  meshed: boolean;
  host?: string;
  workload: string;
}

async function endpoint(ctl: TestController, hostname: string, workload: string): Promise<EndpointView | undefined> {
  const res: ApiResponse = await ctl.api('GET', '/v1/services');
  assert.equal(res.status, 200);
  const svc = res.body.services.find((s: { hostname: string }) => s.hostname === hostname);
  return svc?.endpoints.find((e: EndpointView) => e.workload === workload);
}

/** Waits until the workload's endpoint in GET /v1/services satisfies `want`; returns it. */
function endpointWhere(ctl: TestController, what: string, want: (e: EndpointView) => boolean, timeoutMs = 5000): Promise<EndpointView> {
  return waitFor(
    what,
    async () => {
      const e = await endpoint(ctl, 'reviews.default.mesh', 'reviews-v2');
      return e && want(e) ? e : undefined;
    },
    timeoutMs,
    50,
  );
}

async function hostView(ctl: TestController, name: string) {
  const res = await ctl.api('GET', '/v1/hosts');
  assert.equal(res.status, 200);
  return res.body.find((h: { name: string }) => h.name === name);
}

const REGISTER = [
  'workload',
  'register',
  '--name',
  'reviews-v2',
  '--service',
  'reviews',
  '--namespace',
  'default',
  '--service-account',
  'reviews',
  '--address',
  '198.18.0.12',
  '--port',
  'http:9080',
  '--label',
  'version=v2',
  '--host',
  'h2',
  '--uid',
  '1001',
  '--no-wait',
];

let factsPromise: Promise<HostFacts> | undefined;
const facts = () => {
  factsPromise ??= gatherHostFacts();
  return factsPromise;
};

describe('join, health reports, renewal and removal through a running controller', () => {
  let ctl: TestController;
  let creds: HostCredentials & { hostName: string };
  let renewed: HostCredentials;
  let joinedAt = 0;

  before(async () => {
    ctl = await startTestController();
  });
  after(async () => {
    await ctl?.stop();
  });

  test('a host joins on the gRPC port with a token from `vmesh token create`; the same token again is TOKEN_USED', async () => {
    const out = await ctl.cli(['token', 'create', '--host', 'h2', '--ttl', '1h']);
    assert.equal(out.code, 0, out.stderr);
    const token = out.stdout.trim();
    creds = await joinController({ address: ctl.grpcAddress, token, hostName: 'h2', facts: await facts() });
    joinedAt = Date.now();
    assert.equal(creds.hostName, 'h2');
    assert.equal(creds.trustBundlePem, ctl.caPem);
    const cert = new X509Certificate(creds.certPem);
    assert.ok(cert.verify(new X509Certificate(ctl.caPem).publicKey), 'the host certificate is signed by the CA in the data dir');
    assert.match(cert.subjectAltName ?? '', /URI:spiffe:\/\/cluster\.local\/.*h2/);
    await assert.rejects(joinController({ address: ctl.grpcAddress, token, hostName: 'h2', facts: await facts() }), {
      code: 'VMESH_ERR_TOKEN_USED',
    });
    const tokens = await ctl.api('GET', '/v1/tokens');
    assert.deepEqual(
      tokens.body.map((t: { host: string; used: boolean }) => [t.host, t.used]),
      [['h2', true]],
    );
  });

  test('host list -o json shows h2 with its facts', async () => {
    const out = await ctl.cli(['host', 'list', '-o', 'json']);
    assert.equal(out.code, 0, out.stderr);
    const hosts = JSON.parse(out.stdout);
    assert.equal(hosts.length, 1);
    const h = hosts[0];
    const f = await facts();
    assert.equal(h.name, 'h2');
    assert.equal(h.revoked, false);
    assert.equal(h.live, false, 'not live before its first health report');
    assert.equal(h.facts.hostname, f.hostname);
    assert.equal(h.facts.kernel, f.kernel);
    assert.equal(h.facts.cpuCores, f.cpuCores);
    assert.equal(h.facts.os, `${f.osDistro} ${f.osRelease}`.trim());
    assert.deepEqual(h.facts.addresses, [...f.ipv4, ...f.ipv6]);
    assert.ok(
      Math.abs(Date.parse(h.certNotAfter) - creds.notAfter.getTime()) < 1000,
      `${h.certNotAfter} vs ${creds.notAfter.toISOString()}`,
    );
  });

  test('ReportHealth over mTLS marks the host live and the workload healthy, then unhealthy, then healthy again', async () => {
    const reg = await ctl.cli(REGISTER);
    assert.equal(reg.code, 0, reg.stderr);
    const list = async () => {
      const r = await ctl.cli(['workload', 'list', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout)[0];
    };
    // Before any report: health unknown, the endpoint trusted, and meshed because h2 joined. The model is
    // rebuilt after a 100 ms debounce, so the endpoint appears shortly after the registration.
    const [w0, e0] = await Promise.all([list(), endpointWhere(ctl, 'the registered endpoint', () => true)]);
    assert.equal(w0.healthy, undefined);
    assert.deepEqual([e0.healthy, e0.meshed, e0.host], [true, true, 'h2']);

    const up = await reportHealth(ctl.grpcAddress, creds, [{ name: 'reviews-v2', healthy: true }]);
    assert.ok(up.ok, JSON.stringify(up));
    assert.equal(Number(up.ack.nextReportMs), 20_000, 'a third of the default 60 s host timeout');
    const h = await hostView(ctl, 'h2');
    assert.equal(h.live, true);
    assert.ok(Math.abs(Date.parse(h.lastSeen) - Date.now()) < 5000, h.lastSeen);
    assert.equal((await list()).healthy, true);
    await endpointWhere(ctl, 'endpoint healthy', (e) => e.healthy);

    const down = await reportHealth(ctl.grpcAddress, creds, [{ name: 'reviews-v2', healthy: false }]);
    assert.ok(down.ok, JSON.stringify(down));
    const [w2] = await Promise.all([list(), endpointWhere(ctl, 'endpoint unhealthy after the report', (e) => !e.healthy)]);
    assert.equal(w2.healthy, false);

    const again = await reportHealth(ctl.grpcAddress, creds, [{ name: 'reviews-v2', healthy: true }]);
    assert.ok(again.ok, JSON.stringify(again));
    await endpointWhere(ctl, 'endpoint healthy again', (e) => e.healthy);
  });

  test("a host cannot report on another host's workloads (a host reports for itself only)", async () => {
    const t = await ctl.api('POST', '/v1/tokens', { host: 'h3', ttl: '10m' });
    assert.equal(t.status, 201);
    const h3 = await joinController({ address: ctl.grpcAddress, token: t.body.token, hostName: 'h3', facts: await facts() });
    // reviews-v2 runs on h2; h3's certificate must not be able to take it out of load balancing.
    const o = await reportHealth(ctl.grpcAddress, h3, [{ name: 'reviews-v2', healthy: false }]);
    try {
      if (!o.ok) assertRefused(o, grpc.status.PERMISSION_DENIED, 'VMESH_ERR_FORBIDDEN');
      await new Promise((r) => setTimeout(r, 300)); // past the model's 100 ms debounce
      const [e, w] = await Promise.all([endpoint(ctl, 'reviews.default.mesh', 'reviews-v2'), ctl.api('GET', '/v1/workloads')]);
      assert.equal(w.body.find((x: { name: string }) => x.name === 'reviews-v2')?.healthy, true, 'workload health as h2 reported it');
      assert.equal(e?.healthy, true, 'endpoint still healthy');
    } finally {
      // Whatever happened, h2 reports its workload healthy again, so the next tests start from a known state.
      assert.ok((await reportHealth(ctl.grpcAddress, creds, [{ name: 'reviews-v2', healthy: true }])).ok);
      await endpointWhere(ctl, 'endpoint healthy again', (x) => x.healthy);
    }
  });

  test('ReportHealth without a client certificate is UNAUTHENTICATED and changes nothing', async () => {
    const o = await reportHealth(ctl.grpcAddress, { trustBundlePem: creds.trustBundlePem }, [{ name: 'reviews-v2', healthy: false }]);
    assertRefused(o, grpc.status.UNAUTHENTICATED, 'VMESH_ERR_UNAUTHENTICATED');
    await new Promise((r) => setTimeout(r, 300)); // past the model's 100 ms debounce
    assert.equal((await endpoint(ctl, 'reviews.default.mesh', 'reviews-v2'))?.healthy, true);
  });

  test('Renew before removal returns a later notAfter, and the renewed certificate authenticates', async () => {
    // notAfter has a one-second resolution: make sure the renewal is signed in a later second than the join.
    const wait = joinedAt + 1100 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    renewed = await renewHostCert({
      address: ctl.grpcAddress,
      keyPem: creds.keyPem,
      certPem: creds.certPem,
      trustBundlePem: creds.trustBundlePem,
    });
    assert.ok(renewed.notAfter.getTime() > creds.notAfter.getTime(), `${renewed.notAfter.toISOString()} > ${creds.notAfter.toISOString()}`);
    assert.notEqual(renewed.keyPem, creds.keyPem, 'a new key by default');
    const o = await reportHealth(ctl.grpcAddress, renewed, [{ name: 'reviews-v2', healthy: true }]);
    assert.ok(o.ok, JSON.stringify(o));
    const h = await hostView(ctl, 'h2');
    assert.ok(Math.abs(Date.parse(h.certNotAfter) - renewed.notAfter.getTime()) < 1000, h.certNotAfter);
  });

  test('after `vmesh host remove h2`, ReportHealth and Renew with its certificates are refused', async () => {
    const rm = await ctl.cli(['host', 'remove', 'h2']);
    assert.equal(rm.code, 0, rm.stderr);
    for (const c of [creds, renewed]) {
      assertRefused(
        await reportHealth(ctl.grpcAddress, c, [{ name: 'reviews-v2', healthy: true }]),
        grpc.status.PERMISSION_DENIED,
        'VMESH_ERR_HOST_REVOKED',
      );
      await assert.rejects(
        renewHostCert({ address: ctl.grpcAddress, keyPem: c.keyPem, certPem: c.certPem, trustBundlePem: c.trustBundlePem }),
        { code: 'VMESH_ERR_HOST_REVOKED' },
      );
    }
    const h = await hostView(ctl, 'h2');
    assert.deepEqual([h.revoked, h.live], [true, false]);
    // A removed host's workloads are no longer meshed: no mTLS to a host whose certificate is refused.
    await endpointWhere(ctl, 'endpoint not meshed after removal', (e) => !e.meshed);
  });
});

describe('a host that stops reporting (host timeout 1 s)', () => {
  let ctl: TestController;
  before(async () => {
    ctl = await startTestController({ hostTimeoutSeconds: 1 });
  });
  after(async () => {
    await ctl?.stop();
  });

  test('its endpoints turn unhealthy within 2-3 s of the last report, and healthy with the next one', async () => {
    const t = await ctl.api('POST', '/v1/tokens', { host: 'h2', ttl: '10m' });
    assert.equal(t.status, 201);
    const creds = await joinController({ address: ctl.grpcAddress, token: t.body.token, hostName: 'h2', facts: await facts() });
    const reg = await ctl.api('POST', '/v1/workloads', {
      name: 'reviews-v2',
      service: 'reviews',
      address: '198.18.0.12',
      ports: ['http:9080'],
      host: 'h2',
    });
    assert.equal(reg.status, 201);

    const up = await reportHealth(ctl.grpcAddress, creds, [{ name: 'reviews-v2', healthy: true }]);
    assert.ok(up.ok, JSON.stringify(up));
    const lastReport = Date.now();
    assert.equal(Number(up.ack.nextReportMs), 1000, 'max(1 s, timeout / 3)');
    await endpointWhere(ctl, 'endpoint healthy after the report', (e) => e.healthy, 900);
    assert.equal((await hostView(ctl, 'h2')).live, true);

    await endpointWhere(ctl, 'endpoint unhealthy once the host is silent', (e) => !e.healthy, 5000);
    const elapsed = Date.now() - lastReport;
    assert.ok(elapsed >= 1000 && elapsed <= 3500, `went unhealthy ${elapsed} ms after the last report`);
    assert.equal((await hostView(ctl, 'h2')).live, false);

    const back = await reportHealth(ctl.grpcAddress, creds, [{ name: 'reviews-v2', healthy: true }]);
    assert.ok(back.ok, JSON.stringify(back));
    await endpointWhere(ctl, 'endpoint healthy after the host reports again', (e) => e.healthy, 2000);
  });
});
