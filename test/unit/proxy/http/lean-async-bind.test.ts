import assert from 'node:assert/strict';
import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { describe, test } from 'node:test';
import { installLeanAsyncBind } from '../../../../src/proxy/http/lean-async-bind.js';

describe('lean AsyncResource#bind (installed by the first upstream HTTP/2 session)', () => {
  const store = new AsyncLocalStorage<string>();
  const probe = (r: AsyncResource) => {
    const seen: Array<{ ctx: string | undefined; id: number; self: unknown; args: unknown[] }> = [];
    const fn = function (this: unknown, a: unknown, b: unknown) {
      seen.push({ ctx: store.getStore(), id: executionAsyncId(), self: this, args: [a, b] });
      return 'ret';
    };
    const bound = r.bind(fn) as (this: unknown, ...args: unknown[]) => unknown;
    // Node takes a thisArg (its typings leave it out).
    const withThis = (r.bind as (f: typeof fn, t: unknown) => (...args: unknown[]) => unknown).call(r, fn, 'fixed');
    return { seen, fn, bound, withThis };
  };
  const exercise = () => {
    // The resource is made inside a context: bound functions run in it wherever they are called from.
    const r = store.run('inside', () => new AsyncResource('Probe'));
    const p = probe(r);
    const host = { m: p.bound };
    const results = [host.m(1, 2), p.withThis(3, 4)];
    const desc = Object.getOwnPropertyDescriptor(p.bound, 'length');
    return { r, p, host, results, desc };
  };

  test('runs in the resource scope with the caller this, keeps length and the asyncResource accessor', () => {
    // What Node's bind does, observed before the lean one replaces it: the lean one must do the same.
    const before = exercise();
    installLeanAsyncBind();
    const prototypeBind = AsyncResource.prototype.bind;
    installLeanAsyncBind();
    assert.equal(AsyncResource.prototype.bind, prototypeBind, 'installed once');
    const after = exercise();
    for (const x of [before, after]) {
      assert.deepEqual(x.results, ['ret', 'ret']);
      assert.equal(x.p.seen[0]?.ctx, 'inside');
      assert.equal(x.p.seen[0]?.id, x.r.asyncId());
      assert.equal(x.p.seen[0]?.self, x.host);
      assert.deepEqual(x.p.seen[0]?.args, [1, 2]);
      assert.equal(x.p.seen[1]?.self, 'fixed');
      assert.deepEqual(x.p.seen[1]?.args, [3, 4]);
      assert.deepEqual(x.desc, { value: 2, writable: false, enumerable: false, configurable: true });
    }
    // The accessor (deprecated in Node) still answers and can be reassigned; the bound function keeps its resource.
    const b = after.p.bound as unknown as { asyncResource: unknown };
    assert.equal(b.asyncResource, after.r);
    const other = new AsyncResource('Other');
    b.asyncResource = other;
    assert.equal(b.asyncResource, other);
    after.p.bound(5, 6);
    assert.equal(after.p.seen[2]?.id, after.r.asyncId());
    assert.throws(() => after.r.bind(42 as unknown as () => void), { code: 'ERR_INVALID_ARG_TYPE' });
  });
});
