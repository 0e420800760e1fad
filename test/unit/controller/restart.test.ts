import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  apiRequest,
  type ControllerProcess,
  runCli,
  startControllerProcess,
  tempDataDir,
  waitFor,
} from '../../support/controller-harness.js';

const dr = (name: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default}
spec:
  host: ${name}
  subsets:
  - {name: v1, labels: {version: v1}}
`;

function caHashOf(pem: string): string {
  return createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

describe('a controller subprocess keeps its state across restarts on the same data dir', () => {
  let data: { dir: string; remove(): Promise<void> };
  let proc: ControllerProcess | undefined;

  const cli = (args: readonly string[], input?: string) => {
    if (!proc) throw new Error('no controller running');
    return runCli([...args, '--controller', proc.apiUrl, '--data-dir', data.dir], input === undefined ? {} : { input });
  };
  const api = async (method: string, path: string, body?: unknown) => {
    if (!proc) throw new Error('no controller running');
    const [token, ca] = await Promise.all([
      readFile(join(data.dir, 'admin-token'), 'utf8'),
      readFile(join(data.dir, 'ca', 'ca-cert.pem'), 'utf8'),
    ]);
    return apiRequest(proc.apiUrl, ca, method, path, { token: token.trim(), body });
  };
  const vips = async () => {
    const res = await api('GET', '/v1/services');
    assert.equal(res.status, 200);
    return Object.fromEntries(res.body.services.map((s: { hostname: string; vip: string }) => [s.hostname, s.vip])) as Record<
      string,
      string
    >;
  };
  const register = (name: string, service: string, address: string) =>
    api('POST', '/v1/workloads', { name, service, address, ports: ['http:9080'], host: 'h2', uid: 1001 });

  before(async () => {
    data = await tempDataDir();
  });
  after(async () => {
    await proc?.stop('SIGKILL');
    await data?.remove();
  });

  let firstVips: Record<string, string> = {};
  let firstCa = '';
  let firstToken = '';

  test('first start: registrations, config, a token; the admin token file is mode 0600', async () => {
    proc = await startControllerProcess({ dataDir: data.dir });
    // One at a time, so the VIPs follow registration order rather than the sorted order a fresh allocation would give.
    for (const [name, service, address] of [
      ['reviews-v2', 'reviews', '198.18.0.12'],
      ['ratings-v1', 'ratings', '198.18.0.13'],
      ['details-v1', 'details', '198.18.0.14'],
    ] as const) {
      const r = await register(name, service, address);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      firstVips = await waitFor(`a VIP for ${service}`, async () => {
        const v = await vips();
        return v[`${service}.default.mesh`] ? v : undefined;
      });
    }
    assert.deepEqual(firstVips, {
      'details.default.mesh': '240.240.0.3',
      'ratings.default.mesh': '240.240.0.2',
      'reviews.default.mesh': '240.240.0.1',
    });
    // `--file=-`: `-f -` is refused by the CLI's argument parser (see cli.test.ts).
    const applied = await cli(['config', 'apply', '--file=-'], dr('reviews'));
    assert.equal(applied.code, 0, applied.stderr);
    const token = await cli(['token', 'create', '--host', 'h2']);
    assert.equal(token.code, 0, token.stderr);
    firstCa = await readFile(join(data.dir, 'ca', 'ca-cert.pem'), 'utf8');
    assert.ok(token.stdout.trim().endsWith(`.${caHashOf(firstCa)}`));
    firstToken = (await readFile(join(data.dir, 'admin-token'), 'utf8')).trim();
    const mode = (await stat(join(data.dir, 'admin-token'))).mode & 0o777;
    assert.equal(mode.toString(8), '600', 'admin-token is readable by its owner only');
    assert.equal(((await stat(join(data.dir, 'ca', 'ca-key.pem'))).mode & 0o777).toString(8), '600', 'the CA key too');
  });

  test('SIGTERM stops it cleanly (exit 0)', async () => {
    const r = await proc?.stop('SIGTERM');
    assert.deepEqual(r, { code: 0, signal: null }, proc?.stderr());
  });

  test('after a restart: same VIPs, registrations, config, CA and admin token; new services take free VIPs', async () => {
    proc = await startControllerProcess({ dataDir: data.dir });
    // Compared right away: the model is rebuilt before the controller reports ready.
    assert.deepEqual(await vips(), firstVips);
    const workloads = await api('GET', '/v1/workloads');
    assert.deepEqual(
      workloads.body.map((w: { name: string; host: string; uid: number }) => [w.name, w.host, w.uid]),
      [
        ['details-v1', 'h2', 1001],
        ['ratings-v1', 'h2', 1001],
        ['reviews-v2', 'h2', 1001],
      ],
    );
    assert.equal((await api('GET', '/v1/config/DestinationRule/default/reviews')).status, 200);
    assert.equal(await readFile(join(data.dir, 'ca', 'ca-cert.pem'), 'utf8'), firstCa, 'the CA certificate is the one from before');
    assert.equal((await readFile(join(data.dir, 'admin-token'), 'utf8')).trim(), firstToken, 'the admin token is the one from before');
    const token = await cli(['token', 'create', '--host', 'h3']);
    assert.equal(token.code, 0, token.stderr);
    assert.ok(token.stdout.trim().endsWith(`.${caHashOf(firstCa)}`), 'tokens pin the same CA hash');
    const tokens = await api('GET', '/v1/tokens');
    assert.deepEqual(tokens.body.map((t: { host: string }) => t.host).sort(), ['h2', 'h3'], 'the token made before the restart is kept');

    assert.equal((await register('productpage-v1', 'productpage', '198.18.0.15')).status, 201);
    const now = await waitFor('four services', async () => {
      const v = await vips();
      return Object.keys(v).length === 4 ? v : undefined;
    });
    assert.equal(new Set(Object.values(now)).size, 4, `distinct VIPs: ${JSON.stringify(now)}`);
    for (const [h, v] of Object.entries(firstVips)) assert.equal(now[h], v, h);
  });

  test('kill -9 right after `config apply` returns: the applied resource is there after a restart', async () => {
    const applied = await cli(['config', 'apply', '--file=-', '-o', 'json'], dr('ratings'));
    assert.equal(applied.code, 0, applied.stderr);
    assert.deepEqual(JSON.parse(applied.stdout).results, [{ key: 'DestinationRule/default/ratings', action: 'created' }]);
    const killed = await proc?.stop('SIGKILL');
    assert.equal(killed?.signal, 'SIGKILL');
    proc = await startControllerProcess({ dataDir: data.dir });
    const got = await cli(['config', 'get', 'DestinationRule', 'ratings', '-o', 'json']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(JSON.parse(got.stdout).spec.host, 'ratings');
    const list = await api('GET', '/v1/config/DestinationRule');
    assert.deepEqual(list.body.map((r: { metadata: { name: string } }) => r.metadata.name).sort(), ['ratings', 'reviews']);
  });
});

describe('a controller that cannot listen', () => {
  test('exits 1 promptly with one VMESH_ERR_UNAVAILABLE line when its API port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    const data = await tempDataDir();
    try {
      const args = [
        '--data-dir',
        data.dir,
        '--listen',
        '127.0.0.1',
        '--grpc-port',
        '0',
        '--api-port',
        String(port),
        '--log-level',
        'silent',
      ];
      const r = await runCli(['controller', ...args], { timeoutMs: 6000 });
      assert.notEqual(r.code, null, `still running after 6 s (killed): a failed start must not leave servers holding the process`);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stdout, '', 'no ready line');
      assert.match(r.stderr, new RegExp(`^VMESH_ERR_UNAVAILABLE: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE\\n$`));
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
      await data.remove();
    }
  });
});
