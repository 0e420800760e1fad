import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { type Browser, chromium, type Page } from 'playwright-core';
import { controllerServiceClient, type HealthReportAck__Output as HealthReportAck } from '../../../src/api/controller-proto.js';
import { edgeToMessage } from '../../../src/api/edge-messages.js';
import type { EdgeSample, MeshGraph } from '../../../src/api/edges.js';
import { gatherHostFacts, type HostCredentials, joinController } from '../../../src/ca/index.js';
import { apiRequest, startTestController, type TestController } from '../../support/controller-harness.js';
import { edgeSample } from '../../support/edge-samples.js';

const CHROMIUM = '/usr/bin/chromium';
const BOUNDS = [5, 10, 25, 50];

const edge = (over: Partial<EdgeSample>) => edgeSample(over, BOUNDS);

/** Bookinfo's first hops after `n` rounds of traffic: a plaintext client, productpage to reviews v1 and v2 over mTLS. */
function traffic(n: number): EdgeSample[] {
  return [
    edge({
      sourceWorkload: 'client',
      sourcePrincipal: 'unknown',
      destinationService: 'productpage.default.mesh',
      destinationWorkload: 'productpage-v1',
      security: 'none',
      requests: 20 * n,
      durationCounts: [0, 20 * n, 0, 0, 0],
    }),
    edge({ requests: 50 * n, durationCounts: [40 * n, 10 * n, 0, 0, 0] }),
    edge({ destinationWorkload: 'reviews-v2', requests: 30 * n, errors: 6 * n, durationCounts: [0, 0, 20 * n, 10 * n, 0] }),
  ];
}

/** One ReportHealth call over mutual TLS with the host's certificate, as its agent makes it. */
async function reportHealth(address: string, creds: HostCredentials, edges: EdgeSample[]): Promise<HealthReportAck> {
  const Client = controllerServiceClient();
  const client = new Client(
    address,
    grpc.credentials.createSsl(Buffer.from(creds.trustBundlePem), Buffer.from(creds.keyPem), Buffer.from(creds.certPem)),
  );
  type Fn = (req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: HealthReportAck) => void) => void;
  const fn = (client as unknown as Record<string, Fn>).ReportHealth as Fn;
  try {
    return await new Promise((resolve, reject) =>
      fn.call(client, { workloads: [], edges: edges.map(edgeToMessage) }, { deadline: Date.now() + 10_000 }, (e, r) =>
        e || !r ? reject(e ?? new Error('no answer')) : resolve(r),
      ),
    );
  } finally {
    client.close();
  }
}

const EXPECTED_EDGES = [
  ['service:productpage.default.mesh', 'workload:default/productpage-v1', 'false'],
  ['service:reviews.default.mesh', 'workload:default/reviews-v1', 'true'],
  ['service:reviews.default.mesh', 'workload:default/reviews-v2', 'true'],
  ['workload:default/client', 'service:productpage.default.mesh', 'false'],
  ['workload:default/productpage-v1', 'service:reviews.default.mesh', 'true'],
];

interface RenderedEdge {
  source: string;
  target: string;
  mtls: string;
  rate: string;
  lock: boolean;
  sub: string;
  cls: string;
}

function renderedEdges(page: Page): Promise<RenderedEdge[]> {
  return page.$$eval('#graph g.edge', (gs) =>
    gs.map((g) => ({
      source: g.getAttribute('data-source') ?? '',
      target: g.getAttribute('data-target') ?? '',
      mtls: g.getAttribute('data-mtls') ?? '',
      rate: g.querySelector('text.rate')?.textContent ?? '',
      lock: g.querySelector('g.lock') !== null,
      sub: g.querySelector('text.sub')?.textContent ?? '',
      cls: g.getAttribute('class') ?? '',
    })),
  );
}

describe('the mesh UI on the API port, fed by health reports with edge telemetry', () => {
  let ctl: TestController;
  let browser: Browser | undefined;
  let uiUrl = '';

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: this test drives Debian's chromium (apt-get install chromium)`);
    ctl = await startTestController();
    const token = await ctl.api('POST', '/v1/tokens', { host: 'h1', ttl: '10m' });
    assert.equal(token.status, 201);
    const creds = await joinController({
      address: ctl.grpcAddress,
      token: token.body.token,
      hostName: 'h1',
      facts: await gatherHostFacts(),
    });
    const applied = await ctl.api(
      'POST',
      '/v1/config',
      [
        'apiVersion: networking.istio.io/v1',
        'kind: DestinationRule',
        'metadata: { name: reviews, namespace: default }',
        'spec: { host: reviews.default.mesh, subsets: [{ name: v1, labels: { version: v1 } }] }',
      ].join('\n'),
    );
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    await reportHealth(ctl.grpcAddress, creds, traffic(1));
    // Reports closer than a second coalesce: the second one makes the rate window.
    await new Promise((r) => setTimeout(r, 1200));
    await reportHealth(ctl.grpcAddress, creds, traffic(2));
    const printed = await ctl.cli(['ui']);
    assert.equal(printed.code, 0, printed.stderr);
    uiUrl = printed.stdout.trim();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await ctl?.stop();
    }
  });

  test('vmesh ui prints the UI URL with the admin token in the fragment', () => {
    assert.equal(uiUrl, `${ctl.apiUrl}/ui/#token=${encodeURIComponent(ctl.adminToken)}`);
  });

  test('GET /v1/graph needs the admin token; with it, the graph of the reported edges', async () => {
    const anonymous = await apiRequest(ctl.apiUrl, ctl.caPem, 'GET', '/v1/graph');
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.error.code, 'VMESH_ERR_UNAUTHENTICATED');
    const wrong = await apiRequest(ctl.apiUrl, ctl.caPem, 'GET', '/v1/graph', { token: 'not-the-token' });
    assert.equal(wrong.status, 401);
    const res = await ctl.api('GET', '/v1/graph');
    assert.equal(res.status, 200);
    const g = res.body as MeshGraph;
    assert.deepEqual(
      g.edges.map((e) => [e.source, e.target, String(e.mtls)]),
      EXPECTED_EDGES,
    );
    const v2 = g.edges.find((e) => e.target === 'workload:default/reviews-v2');
    // 30 more requests, 6 more errors in the window; totals are the second report's.
    assert.deepEqual([v2?.requests, v2?.errors, v2?.errorRate], [60, 12, 0.2]);
    assert.ok(v2 && v2.rps > 0 && v2.rps <= 30 / 1.0, `rps ${v2?.rps}`);
    // Δbuckets [0, 0, 20, 10, 0]: rank 29.7 is 9.7/10 of (25, 50].
    assert.ok(v2?.p99Ms !== null && Math.abs((v2?.p99Ms ?? 0) - 49.25) < 1e-9, `p99 ${v2?.p99Ms}`);
  });

  test('GET /v1/config lists every resource without a kind', async () => {
    const res = await ctl.api('GET', '/v1/config');
    assert.equal(res.status, 200);
    assert.ok(
      res.body.some((r: { kind: string; namespace: string; name: string }) => r.kind === 'DestinationRule' && r.name === 'reviews'),
      JSON.stringify(res.body),
    );
  });

  test('the page renders the graph, the hosts and the config from the API, and takes the token out of the URL', async (t) => {
    assert.ok(browser);
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 } });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const first = await page.goto(uiUrl);
      assert.equal(first?.status(), 200);
      assert.match(first?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
      await page.waitForFunction(() => document.querySelectorAll('#graph g.edge').length === 5, undefined, { timeout: 15_000 });
      assert.equal(new URL(page.url()).hash, '', 'the fragment with the token is cleared');
      assert.equal(await page.locator('#login').isVisible(), false, 'no token form once a token is held');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('vmesh.adminToken')), ctl.adminToken);

      const edges = await renderedEdges(page);
      assert.deepEqual(edges.map((e) => [e.source, e.target, e.mtls]).sort(), EXPECTED_EDGES);
      for (const e of edges) {
        assert.equal(e.lock, e.mtls === 'true', `a padlock on mTLS edges only: ${e.source} -> ${e.target}`);
        assert.match(e.rate, /^\d+(\.\d+)? req\/s$/);
      }
      const v2 = edges.find((e) => e.target === 'workload:default/reviews-v2');
      assert.match(v2?.sub ?? '', /^20\.0% err · p99 49 ms$/);
      assert.match(v2?.cls ?? '', /\berror\b/, 'an edge with 20 % errors is drawn as failing');
      const v1 = edges.find((e) => e.target === 'workload:default/reviews-v1');
      assert.match(v1?.sub ?? '', /^0\.0% err · p99 /);
      assert.match(v1?.cls ?? '', /\bok\b/);
      const api = (await ctl.api('GET', '/v1/graph')).body as MeshGraph;
      const apiV1 = api.edges.find((e) => e.target === 'workload:default/reviews-v1');
      assert.ok(apiV1 && apiV1.rps > 0);
      const shown = Number(/([\d.]+) req\/s/.exec(v1?.rate ?? '')?.[1]);
      assert.ok(Math.abs(shown - apiV1.rps) <= apiV1.rps * 0.01, `label ${v1?.rate}, API ${apiV1.rps} req/s`);

      const nodes = await page.$$eval('#graph g.node', (gs) => gs.map((g) => g.getAttribute('data-id')).sort());
      assert.deepEqual(nodes, [
        'service:productpage.default.mesh',
        'service:reviews.default.mesh',
        'workload:default/client',
        'workload:default/productpage-v1',
        'workload:default/reviews-v1',
        'workload:default/reviews-v2',
      ]);
      // Layered left to right: callers before the services they call, services before their workloads.
      const x = await page.$$eval('#graph g.node', (gs) =>
        Object.fromEntries(
          gs.map((g) => [g.getAttribute('data-id'), Number(/translate\(([\d.]+)/.exec(g.getAttribute('transform') ?? '')?.[1])]),
        ),
      );
      assert.ok((x['workload:default/client'] ?? 0) < (x['service:productpage.default.mesh'] ?? 0));
      assert.ok((x['service:reviews.default.mesh'] ?? 0) < (x['workload:default/reviews-v2'] ?? 0));

      const host = page.locator('#hosts tr[data-host="h1"]');
      assert.equal(await host.getAttribute('data-state'), 'live');
      assert.equal(await host.locator('td').nth(1).textContent(), 'live');
      const config = await page.$$eval('#config tbody tr', (rs) => rs.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent)));
      assert.deepEqual(config, [['DestinationRule', 'default', 'reviews', 'networking.istio.io/v1']]);

      const shot = join(tmpdir(), `vmesh-ui-${process.pid}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      const png = await readFile(shot);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      assert.ok(png.length > 20_000, `a screenshot of a drawn page, not a blank one (${png.length} bytes)`);
      t.diagnostic(`screenshot: ${shot}`);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  test('without a token the page asks for one; a wrong one is refused and asked again', async () => {
    assert.ok(browser);
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const page = await context.newPage();
      await page.goto(`${ctl.apiUrl}/ui`);
      await page.locator('#login').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#main').isHidden(), true);
      await page.fill('#token-input', 'wrong');
      await page.click('#login button[type=submit]');
      await page.waitForFunction(() => document.getElementById('status')?.classList.contains('error'));
      assert.equal(await page.locator('#login').isVisible(), true);
      await page.fill('#token-input', ctl.adminToken);
      await page.click('#login button[type=submit]');
      await page.waitForFunction(() => document.querySelectorAll('#graph g.edge').length === 5, undefined, { timeout: 15_000 });
      const missing = await page.goto(`${ctl.apiUrl}/ui/secrets.json`);
      assert.equal(missing?.status(), 404);
    } finally {
      await context.close();
    }
  });
});
