import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { gatherHostFacts, joinController } from '../../../src/ca/index.js';
import { startTestController, type TestController, waitFor } from '../../support/controller-harness.js';

/** GET /metrics without a token: status, content type, and `name{labels} value` lines as a map. */
function scrape(ctl: TestController): Promise<{ status: number; type: string; values: Map<string, number> }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/metrics', ctl.apiUrl), { ca: ctl.caPem, agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => {
        const values = new Map<string, number>();
        for (const line of text.split('\n')) {
          if (line === '' || line.startsWith('#')) continue;
          const at = line.lastIndexOf(' ');
          values.set(line.slice(0, at), Number(line.slice(at + 1)));
        }
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), values });
      });
    });
    req.on('timeout', () => req.destroy(new Error('GET /metrics: no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

describe("the controller's /metrics: istiod's names, anonymous reads, values that follow what happens", () => {
  let ctl: TestController;
  before(async () => {
    ctl = await startTestController();
  });
  after(async () => {
    await ctl?.stop();
  });

  test('a scrape needs no token and is Prometheus text with the control-plane families', async () => {
    const m = await scrape(ctl);
    assert.equal(m.status, 200);
    assert.match(m.type, /^text\/plain; version=0\.0\.4/);
    assert.equal(m.values.get('pilot_xds'), 0, 'no proxy connected yet');
    assert.equal(m.values.get('citadel_server_success_cert_issuance_count'), 0);
    assert.equal(m.values.get('pilot_services'), 0);
    assert.ok((m.values.get('process_resident_memory_bytes') ?? 0) > 0, 'process gauges');
    // Reads of everything else still need the admin token.
    const anon = await new Promise<number>((resolve, reject) => {
      request(new URL('/v1/workloads', ctl.apiUrl), { ca: ctl.caPem, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(anon, 401);
  });

  test('a join is one CSR and one issued host certificate; a registration is one more service', async () => {
    const t = await ctl.api('POST', '/v1/tokens', { host: 'h2', ttl: '1h' });
    assert.ok(t.status < 300, JSON.stringify(t.body));
    await joinController({ address: ctl.grpcAddress, token: t.body.token, hostName: 'h2', facts: await gatherHostFacts() });
    const r = await ctl.api('POST', '/v1/workloads', {
      name: 'reviews-1',
      service: 'reviews',
      address: '198.18.0.12',
      ports: ['http:9080'],
      host: 'h2',
    });
    assert.ok(r.status < 300, JSON.stringify(r.body));
    const m = await waitFor(
      'the model to hold the new service',
      async () => {
        const s = await scrape(ctl);
        return s.values.get('pilot_services') === 1 ? s : undefined;
      },
      5000,
    );
    assert.equal(m.values.get('citadel_server_csr_count'), 1);
    assert.equal(m.values.get('citadel_server_success_cert_issuance_count'), 1);
    assert.equal(m.values.get('vmesh_ca_signings_total{kind="host",result="success"}'), 1);
    assert.equal(m.values.get('citadel_server_csr_sign_err_count'), 0);
  });
});
