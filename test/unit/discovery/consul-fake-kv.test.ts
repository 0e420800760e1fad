import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type FakeConsul, startFakeConsul } from '../../support/fake-consul.js';

// The fake's KV and transaction endpoints behave as Consul documents them (api-docs/kv, api-docs/txn).

async function call(fake: FakeConsul, method: string, path: string, body?: string) {
  const res = await fetch(`${fake.url}${path}`, { method, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return {
    status: res.status,
    text,
    json: res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : undefined,
    index: Number(res.headers.get('x-consul-index')),
  };
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('fake consul KV', () => {
  let fake: FakeConsul;
  before(async () => {
    fake = await startFakeConsul({ jitter: false });
  });
  after(async () => {
    await fake.stop();
  });

  test('PUT and GET: base64 values, indexes, 404 for a miss, raw, keys with a separator', async () => {
    assert.equal((await call(fake, 'PUT', '/v1/kv/app/a', 'one')).json, true);
    assert.equal((await call(fake, 'PUT', '/v1/kv/app/sub/b', 'two')).json, true);
    const one = await call(fake, 'GET', '/v1/kv/app/a');
    assert.equal(one.status, 200);
    assert.equal(one.json[0].Key, 'app/a');
    assert.equal(Buffer.from(one.json[0].Value, 'base64').toString(), 'one');
    assert.equal(one.index, one.json[0].ModifyIndex);
    assert.equal(one.json[0].CreateIndex, one.json[0].ModifyIndex);
    assert.equal((await call(fake, 'GET', '/v1/kv/app/a?raw')).text, 'one');
    assert.equal((await call(fake, 'GET', '/v1/kv/app/none')).status, 404);
    const list = await call(fake, 'GET', '/v1/kv/app/?recurse');
    assert.deepEqual(
      list.json.map((e: { Key: string }) => e.Key),
      ['app/a', 'app/sub/b'],
    );
    assert.equal(list.index, Math.max(...list.json.map((e: { ModifyIndex: number }) => e.ModifyIndex)));
    assert.deepEqual((await call(fake, 'GET', '/v1/kv/app/?keys&separator=/')).json, ['app/a', 'app/sub/']);
    // An unchanged write keeps the ModifyIndex.
    await call(fake, 'PUT', '/v1/kv/app/a', 'one');
    assert.equal((await call(fake, 'GET', '/v1/kv/app/a')).json[0].ModifyIndex, one.json[0].ModifyIndex);
  });

  test('cas: 0 creates only if absent, N replaces only at that index; DELETE cas=0 does nothing', async () => {
    assert.equal((await call(fake, 'PUT', '/v1/kv/cas/k?cas=0', 'v1')).json, true);
    assert.equal((await call(fake, 'PUT', '/v1/kv/cas/k?cas=0', 'v2')).json, false);
    const idx = (await call(fake, 'GET', '/v1/kv/cas/k')).json[0].ModifyIndex;
    assert.equal((await call(fake, 'PUT', `/v1/kv/cas/k?cas=${idx + 100}`, 'v3')).json, false);
    assert.equal((await call(fake, 'PUT', `/v1/kv/cas/k?cas=${idx}`, 'v3')).json, true);
    assert.equal(fake.kvGet('cas/k'), 'v3');
    assert.equal((await call(fake, 'DELETE', '/v1/kv/cas/k?cas=0')).json, false);
    assert.equal(fake.kvGet('cas/k'), 'v3');
    assert.equal((await call(fake, 'PUT', '/v1/kv/cas/k?cas=x', 'v')).status, 400);
  });

  test('a recursive blocking read wakes on a delete under its prefix (tombstones), not on writes elsewhere', async () => {
    await call(fake, 'PUT', '/v1/kv/w/a', '1');
    const first = await call(fake, 'GET', '/v1/kv/w/?recurse');
    const parked = call(fake, 'GET', `/v1/kv/w/?recurse&index=${first.index}&wait=3s`);
    await new Promise((r) => setTimeout(r, 100));
    await call(fake, 'PUT', '/v1/kv/elsewhere', 'x');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(fake.blocked(), 1, 'a write outside the prefix leaves it parked');
    await call(fake, 'DELETE', '/v1/kv/w/a');
    const woke = await parked;
    assert.equal(woke.status, 404, 'the prefix is empty now');
    assert.ok(woke.index > first.index, 'the index comes from the tombstone, not backwards');
  });

  test('transactions apply all operations or none: 409 lists every failure, 200 gives results but for deletes', async () => {
    await call(fake, 'PUT', '/v1/kv/t/x', 'old');
    const x = (await call(fake, 'GET', '/v1/kv/t/x')).json[0];
    const rolled = await call(
      fake,
      'PUT',
      '/v1/txn',
      JSON.stringify([
        { KV: { Verb: 'set', Key: 't/new', Value: b64('n') } },
        { KV: { Verb: 'cas', Key: 't/x', Value: b64('y'), Index: x.ModifyIndex + 1 } },
        { KV: { Verb: 'check-not-exists', Key: 't/x' } },
      ]),
    );
    assert.equal(rolled.status, 409);
    assert.equal(rolled.json.Results, null);
    assert.deepEqual(
      rolled.json.Errors.map((e: { OpIndex: number }) => e.OpIndex),
      [1, 2],
    );
    assert.match(rolled.json.Errors[0].What, /failed to set key "t\/x", index is stale/);
    assert.equal(fake.kvGet('t/new'), undefined, 'nothing applied');
    const ok = await call(
      fake,
      'PUT',
      '/v1/txn',
      JSON.stringify([
        { KV: { Verb: 'cas', Key: 't/x', Value: b64('y'), Index: x.ModifyIndex } },
        { KV: { Verb: 'delete', Key: 't/gone' } },
        { KV: { Verb: 'check-index', Key: 't/x', Index: 0 } },
      ]),
    );
    assert.equal(ok.status, 409, 'check-index sees the cas of the same transaction');
    const ok2 = await call(
      fake,
      'PUT',
      '/v1/txn',
      JSON.stringify([
        { KV: { Verb: 'cas', Key: 't/x', Value: b64('y'), Index: x.ModifyIndex } },
        { KV: { Verb: 'delete', Key: 't/gone' } },
        { KV: { Verb: 'set', Key: 't/z', Value: b64('z') } },
      ]),
    );
    assert.equal(ok2.status, 200);
    assert.equal(ok2.json.Results.length, 2, 'no result for the delete');
    assert.equal(ok2.json.Results[0].KV.Value, null);
    assert.equal(ok2.json.Results[0].KV.ModifyIndex, ok2.json.Results[1].KV.ModifyIndex, 'one index for the whole transaction');
    assert.equal(fake.kvGet('t/x'), 'y');
  });

  test('a transaction of more than 64 operations is refused with 413', async () => {
    const ops = Array.from({ length: 65 }, (_, i) => ({ KV: { Verb: 'set', Key: `big/${i}`, Value: b64('v') } }));
    const r = await call(fake, 'PUT', '/v1/txn', JSON.stringify(ops));
    assert.equal(r.status, 413);
    assert.match(r.text, /Transaction contains too many operations \(65 > 64\)/);
    assert.deepEqual(fake.kvKeys('big/'), []);
  });
});
