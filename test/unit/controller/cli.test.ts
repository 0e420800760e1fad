import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { type CliResult, runCli, startTestController, type TestController } from '../../support/controller-harness.js';

const BOOKINFO_FILE = fileURLToPath(new URL('./fixtures/bookinfo.yaml', import.meta.url));
const BOOKINFO = readFileSync(BOOKINFO_FILE, 'utf8');
const BOOKINFO_DOCS = parseAllDocuments(BOOKINFO).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: unknown });

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
];

/** A batch where the first two documents are fine and the third carries a misspelt field. */
const BAD_BATCH = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 50
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings}
    retries:
      attemps: 3
`;

const destinationRule = (name: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${name}
spec:
  host: ${name}
  subsets:
  - name: v1
    labels: {version: v1}
`;

function ok(r: CliResult, what: string): string {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/** A failed command: the exit code and its stderr, which must be exactly one `VMESH_ERR_...: ...` line. */
function failed(r: CliResult, what: string): string {
  assert.notEqual(r.code, 0, `${what} should have failed; stdout: ${r.stdout}`);
  assert.notEqual(r.code, null, `${what} was killed after the timeout`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `${what}: want one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0] ?? '', /^VMESH_ERR_[A-Z_]+: \S/);
  return lines[0] ?? '';
}

describe('vmesh CLI against a running controller', () => {
  let ctl: TestController;
  before(async () => {
    ctl = await startTestController();
  });
  after(async () => {
    await ctl?.stop();
  });

  test('workload register, then list -o json|yaml|table shows it with uid and host; deregister removes it', async () => {
    // h2 runs no agent: register waits for it to present the identity, and says so in one line when it does not.
    const started = Date.now();
    const waited = failed(await ctl.cli([...REGISTER, '--wait-timeout', '1']), 'workload register on a host without agent');
    assert.match(waited, /^VMESH_ERR_IDENTITY_NOT_SERVED: workload default\/reviews-v2 is registered, but host "h2" did not present/);
    assert.ok(Date.now() - started < 15_000, 'the wait ended at its timeout');
    ok(await ctl.cli(['workload', 'deregister', 'reviews-v2']), 'deregister after the timeout');
    const reg = JSON.parse(ok(await ctl.cli([...REGISTER, '--no-wait', '-o', 'json']), 'workload register --no-wait'));
    assert.equal(reg.serviceEntryCreated, true);
    assert.equal(reg.workload.name, 'reviews-v2');

    const [json, yaml, table] = await Promise.all([
      ctl.cli(['workload', 'list', '-o', 'json']),
      ctl.cli(['workload', 'list', '-o', 'yaml']),
      ctl.cli(['workload', 'list', '-o', 'table']),
    ]);
    const expected = {
      name: 'reviews-v2',
      namespace: 'default',
      service: 'reviews',
      serviceAccount: 'reviews',
      address: '198.18.0.12',
      ports: { http: 9080 },
      labels: { version: 'v2', app: 'reviews' },
      host: 'h2',
      uid: 1001,
      state: 'unknown',
      identityServed: false,
    };
    assert.deepEqual(JSON.parse(ok(json, 'list -o json')), [expected]);
    assert.deepEqual(parseYaml(ok(yaml, 'list -o yaml')), [expected]);
    const rows = ok(table, 'list -o table').trimEnd().split('\n');
    assert.equal(rows.length, 2, rows.join('\n'));
    assert.deepEqual(rows[0]?.split(/\s+/), ['NAMESPACE', 'NAME', 'SERVICE', 'ADDRESS', 'PORTS', 'HOST', 'UID', 'STATE', 'LABELS']);
    const cells = rows[1]?.split(/\s+/) ?? [];
    assert.deepEqual(cells.slice(0, 8), ['default', 'reviews-v2', 'reviews', '198.18.0.12', 'http:9080', 'h2', '1001', 'unknown']);

    // The registration made the reviews service, with the workload as its endpoint.
    const svc = (await ctl.api('GET', '/v1/services')).body.services.find(
      (s: { hostname: string }) => s.hostname === 'reviews.default.mesh',
    );
    assert.ok(svc, 'reviews.default.mesh is a service');
    assert.deepEqual(
      svc.endpoints.map((e: { address: string; host: string; uid: number }) => [e.address, e.host, e.uid]),
      [['198.18.0.12', 'h2', 1001]],
    );

    const dereg = JSON.parse(ok(await ctl.cli(['workload', 'deregister', 'reviews-v2', '-o', 'json']), 'deregister'));
    assert.equal(dereg.serviceEntryRemoved, true);
    const [listed, again] = await Promise.all([ctl.api('GET', '/v1/workloads'), ctl.cli(['workload', 'deregister', 'reviews-v2'])]);
    assert.deepEqual(listed.body, []);
    assert.match(failed(again, 'second deregister'), /^VMESH_ERR_NOT_FOUND: .*reviews-v2/);
  });

  test('a pure client registers without ports or service: state client, no service, not probed', async () => {
    const client = ['workload', 'register', '--name', 'client', '--uid', '1601', '--service-account', 'client', '--host', 'h2'];
    // h2 has not joined here, so its address is unknown: the one-line error names the field.
    assert.match(
      failed(await ctl.cli([...client, '--no-wait']), 'client on an unknown host'),
      /^VMESH_ERR_INVALID_RESOURCE: .*address.*h2/,
    );
    assert.match(
      failed(await ctl.cli([...client, '--service', 'x', '--no-wait']), 'client with a service'),
      /^VMESH_ERR_INVALID_RESOURCE: .*service: a workload without ports is a pure client/,
    );
    const reg = JSON.parse(ok(await ctl.cli([...client, '--address', '198.18.0.30', '--no-wait', '-o', 'json']), 'register a client'));
    assert.equal(reg.serviceEntryCreated, false);
    assert.equal(reg.workload.state, 'client');
    const rows = ok(await ctl.cli(['workload', 'list']), 'list')
      .trimEnd()
      .split('\n');
    assert.deepEqual(rows[1]?.split(/\s+/).slice(0, 7), ['default', 'client', '198.18.0.30', 'h2', '1601', 'client']);
    const we = (await ctl.api('GET', '/v1/config/WorkloadEntry/default/client')).body;
    assert.deepEqual(we.spec, { address: '198.18.0.30', labels: {}, serviceAccount: 'client' });
    const services = (await ctl.api('GET', '/v1/services')).body.services as Array<{ endpoints: Array<{ workload: string }> }>;
    assert.ok(!services.some((s) => s.endpoints.some((e) => e.workload === 'client')), 'a pure client is no endpoint');
    ok(await ctl.cli(['workload', 'deregister', 'client']), 'deregister the client');
  });

  test('config apply -f FILE: get -o yaml returns each resource as written, get vs lists it', async () => {
    const applied = JSON.parse(ok(await ctl.cli(['config', 'apply', '-f', BOOKINFO_FILE, '-o', 'json']), 'config apply -f'));
    assert.deepEqual(
      applied.results.map((r: { key: string; action: string }) => `${r.key} ${r.action}`),
      [
        'DestinationRule/default/reviews created',
        'VirtualService/default/reviews created',
        'PeerAuthentication/default/default created',
        'AuthorizationPolicy/default/reviews-viewer created',
      ],
    );
    const [got, list, ap, dr] = await Promise.all([
      ctl.cli(['config', 'get', 'VirtualService', 'reviews', '-o', 'yaml']),
      ctl.cli(['config', 'get', 'vs']),
      ctl.api('GET', '/v1/config/AuthorizationPolicy/default/reviews-viewer'),
      ctl.api('GET', '/v1/config/DestinationRule'),
    ]);
    const vs = parseYaml(ok(got, 'get VirtualService reviews -o yaml'));
    assert.equal(vs.kind, 'VirtualService');
    assert.deepEqual(vs.metadata, { name: 'reviews', namespace: 'default', resourceVersion: vs.metadata.resourceVersion });
    assert.match(vs.metadata.resourceVersion, /^\d+$/);
    assert.deepEqual(vs.spec, BOOKINFO_DOCS.find((d) => d.kind === 'VirtualService')?.spec);
    assert.deepEqual(
      vs.spec.http[0].route.map((r: { weight: number }) => r.weight),
      [90, 10],
    );

    const rows = ok(list, 'get vs').trimEnd().split('\n');
    assert.deepEqual(rows[0]?.split(/\s+/), ['NAMESPACE', 'NAME', 'KIND', 'VERSION']);
    assert.deepEqual(
      rows.slice(1).map((r) => r.split(/\s+/).slice(0, 3)),
      [['default', 'reviews', 'VirtualService']],
    );
    assert.deepEqual(ap.body.spec, BOOKINFO_DOCS.find((d) => d.kind === 'AuthorizationPolicy')?.spec);
    assert.deepEqual(
      dr.body.map((d: { spec: { subsets: Array<{ name: string }> } }) => d.spec.subsets.map((s) => s.name)),
      [['v1', 'v2']],
    );
  });

  test('a batch with one bad resource exits non-zero with one line naming resource and field path, and changes nothing', async () => {
    const reviews = () => ctl.api('GET', '/v1/config/VirtualService/default/reviews');
    const before = await reviews();
    assert.equal(before.status, 200);
    // `--file=-` rather than `-f -`: the latter has its own test below.
    const res = await ctl.cli(['config', 'apply', '--file=-'], { input: BAD_BATCH });
    assert.equal(res.code, 1, `exit code: ${res.code}, stderr ${res.stderr}`);
    const line = failed(res, 'apply of a bad batch');
    assert.match(line, /^VMESH_ERR_INVALID_RESOURCE: VirtualService default\/ratings: spec\.http\[0\]\.retries\.attemps: /);
    const [after, dr] = await Promise.all([reviews(), ctl.api('GET', '/v1/config/DestinationRule/default/ratings')]);
    assert.deepEqual(after.body, before.body, 'reviews is unchanged');
    assert.equal(dr.body?.error?.code, 'VMESH_ERR_NOT_FOUND', 'nothing of the refused batch was stored');
  });

  test('config apply -f - reads the batch from stdin', async () => {
    const r = await ctl.cli(['config', 'apply', '-f', '-', '-o', 'json'], { input: destinationRule('ratings') });
    assert.deepEqual(JSON.parse(ok(r, 'config apply -f -')).results, [{ key: 'DestinationRule/default/ratings', action: 'created' }]);
    assert.equal((await ctl.api('GET', '/v1/config/DestinationRule/default/ratings')).body?.spec?.host, 'ratings');
  });

  test('config apply --file=- reads the batch from stdin', async () => {
    const r = await ctl.cli(['config', 'apply', '--file=-', '-o', 'json'], { input: destinationRule('details') });
    assert.deepEqual(JSON.parse(ok(r, 'config apply --file=-')).results, [{ key: 'DestinationRule/default/details', action: 'created' }]);
  });

  test('config apply of an unchanged file reports unchanged and keeps the resourceVersion', async () => {
    const before = (await ctl.api('GET', '/v1/config/VirtualService/default/reviews')).body;
    const r = JSON.parse(ok(await ctl.cli(['config', 'apply', '-f', BOOKINFO_FILE, '-o', 'json']), 're-apply'));
    assert.ok(
      r.results.every((x: { action: string }) => x.action === 'unchanged'),
      JSON.stringify(r),
    );
    const after = (await ctl.api('GET', '/v1/config/VirtualService/default/reviews')).body;
    assert.match(before.metadata.resourceVersion, /^\d+$/);
    assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion);
  });

  test('config delete removes the resource; get and a second delete are NOT_FOUND', async () => {
    ok(await ctl.cli(['config', 'delete', 'vs', 'reviews']), 'config delete');
    const [got, list] = await Promise.all([
      ctl.cli(['config', 'get', 'VirtualService', 'reviews']),
      ctl.api('GET', '/v1/config/VirtualService'),
    ]);
    assert.match(failed(got, 'get after delete'), /^VMESH_ERR_NOT_FOUND: /);
    assert.deepEqual(list.body, []);
    const again = await ctl.api('DELETE', '/v1/config/VirtualService/default/reviews');
    assert.deepEqual([again.status, again.body?.error?.code], [404, 'VMESH_ERR_NOT_FOUND']);
  });

  test('validate and apply agree: an empty file is nothing to do; references not there yet and Kubernetes kinds warn', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-cli-'));
    try {
      const empty = join(dir, 'empty.yaml');
      writeFileSync(empty, '# nothing here\n');
      const [v, a] = await Promise.all([runCli(['config', 'validate', '-f', empty]), ctl.cli(['config', 'apply', '-f', empty])]);
      assert.equal(ok(v, 'validate empty'), `nothing to validate: no mesh resources in ${empty}\n`);
      assert.equal(ok(a, 'apply empty'), `nothing to apply: no mesh resources in ${empty}\n`);

      const mixed = join(dir, 'mixed.yaml');
      const vs =
        'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: shop}\nspec:\n  hosts: [shop]\n  http:\n  - route:\n    - destination: {host: shop, subset: v2}\n';
      writeFileSync(mixed, `apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: shop}\n---\n${vs}`);
      const want = [
        `warning: VMESH_WARN_SKIPPED_KIND: document 1 of ${mixed}: skipped ServiceAccount shop (v1): not mesh config, vmesh does not read Kubernetes core resources`,
        'warning: VMESH_WARN_REFERENCE_NOT_FOUND: VirtualService default/shop: spec.http[0].route[0].destination.subset: subset "v2" of host shop.default.mesh is not defined',
      ];
      const v2 = await runCli(['config', 'validate', '-f', mixed]);
      assert.equal(ok(v2, 'validate mixed'), '1 resource(s) valid\n');
      const a2 = await ctl.cli(['config', 'apply', '-f', mixed]);
      assert.equal(ok(a2, 'apply mixed'), 'VirtualService/default/shop created\n');
      for (const r of [v2, a2]) {
        const lines = r.stderr.split('\n').filter((l) => l !== '');
        assert.equal(lines.length, 2, r.stderr);
        assert.equal(lines[0], want[0]);
        assert.ok(lines[1]?.startsWith(want[1] ?? ''), lines[1]);
      }

      // analyze: the stored config alone warns; with the DestinationRule given as a file, it is clean.
      const an = await ctl.cli(['config', 'analyze']);
      assert.match(ok(an, 'analyze'), /resource\(s\) analyzed: 1 warning\(s\)\n$/);
      assert.match(an.stderr, /subset "v2" of host shop\.default\.mesh is not defined/);
      const dr = join(dir, 'dr.yaml');
      writeFileSync(
        dr,
        'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: shop}\nspec: {host: shop, subsets: [{name: v2, labels: {version: v2}}]}\n',
      );
      const an2 = await ctl.cli(['config', 'analyze', '-f', dr]);
      assert.match(ok(an2, 'analyze -f dr'), /resource\(s\) analyzed: no issues\n$/);
      assert.equal(an2.stderr, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('validate and apply agree on size: 6 MB applies (over the old 4 MiB body limit); over 16 MiB both refuse alike', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-cli-'));
    try {
      const note = 'x'.repeat(4000);
      const se = (i: number) =>
        `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext-${i}, annotations: {note: "${note}"}}\nspec: {hosts: [ext-${i}.example.com], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}\n`;
      const big = join(dir, 'big.yaml');
      writeFileSync(big, Array.from({ length: 1500 }, (_, i) => se(i)).join('---\n'));
      const v = await runCli(['config', 'validate', '-f', big]);
      assert.equal(ok(v, 'validate 6 MB'), '1500 resource(s) valid\n');
      const a = await ctl.cli(['config', 'apply', '-f', big, '--dry-run', '-o', 'json']);
      assert.equal(JSON.parse(ok(a, 'apply 6 MB')).results.length, 1500);

      const huge = join(dir, 'huge.yaml');
      writeFileSync(huge, Array.from({ length: 4500 }, (_, i) => se(i)).join('---\n'));
      const [hv, ha] = await Promise.all([runCli(['config', 'validate', '-f', huge]), ctl.cli(['config', 'apply', '-f', huge])]);
      const line = failed(hv, 'validate 18 MB');
      assert.match(
        line,
        /^VMESH_ERR_LIMIT_EXCEEDED: config is \d+ bytes, over the 16777216-byte limit of one apply; split it into several applies$/,
      );
      assert.equal(failed(ha, 'apply 18 MB'), line);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('token create --host h2 --ttl 1h prints vmesh1.<id>.<secret>.<CA hash>; the API lists it unused', async () => {
    const out = ok(await ctl.cli(['token', 'create', '--host', 'h2', '--ttl', '1h']), 'token create');
    const token = out.trim();
    assert.equal(out, `${token}\n`, 'the token alone on one line');
    const spki = new X509Certificate(ctl.caPem).publicKey.export({ type: 'spki', format: 'der' });
    const caHash = createHash('sha256').update(spki).digest('hex');
    assert.ok(token.startsWith('vmesh1.'), token);
    assert.ok(token.endsWith(`.${caHash}`), `${token} should end with the CA hash ${caHash}`);
    const id = token.split('.')[1];
    const list = (await ctl.api('GET', '/v1/tokens')).body;
    const t = list.find((x: { id: string }) => x.id === id);
    assert.equal(t?.host, 'h2');
    assert.equal(t?.used, false);
    assert.ok(Math.abs(Date.parse(t.expiresAt) - (Date.now() + 3600_000)) < 60_000, `expiresAt ${t.expiresAt} is about 1h from now`);
    assert.ok(!JSON.stringify(list).includes(token.split('.')[2] ?? '-'), 'the token list never shows the secret');
  });

  test('host list -o json is empty before any host joined; host remove of an unknown host is NOT_FOUND', async () => {
    const [list, rm] = await Promise.all([ctl.cli(['host', 'list', '-o', 'json']), ctl.cli(['host', 'remove', 'nope'])]);
    assert.deepEqual(JSON.parse(ok(list, 'host list')), []);
    assert.match(failed(rm, 'host remove nope'), /^VMESH_ERR_NOT_FOUND: /);
  });
});

describe('vmesh config validate works offline', () => {
  test('a good file is valid and a bad batch fails with one line, with no controller running at all', async () => {
    const [good, bad] = await Promise.all([
      runCli(['config', 'validate', '-f', BOOKINFO_FILE]),
      runCli(['config', 'validate', '--file=-'], { input: BAD_BATCH }),
    ]);
    assert.equal(ok(good, 'validate good'), '4 resource(s) valid\n');
    assert.equal(bad.code, 1);
    assert.match(
      failed(bad, 'validate bad'),
      /^VMESH_ERR_INVALID_RESOURCE: VirtualService default\/ratings: spec\.http\[0\]\.retries\.attemps: /,
    );
  });

  test('config validate -f - reads stdin', async () => {
    assert.equal(ok(await runCli(['config', 'validate', '-f', '-'], { input: BOOKINFO }), 'validate -f -'), '4 resource(s) valid\n');
  });
});
