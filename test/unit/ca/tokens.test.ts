import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { parseToken, TokenService } from '../../../src/ca/tokens.js';
import { FileStore } from '../../../src/store/file/file-store.js';

const CA = { caHash: () => `sha256:${'ab'.repeat(32)}` };
const OTHER_CA = { caHash: () => `sha256:${'cd'.repeat(32)}` };

describe('TokenService', () => {
  let dir: string;
  let store: FileStore;
  let clock: number;
  let tokens: TokenService;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vmesh-tokens-'));
  });
  beforeEach(async () => {
    await store?.close();
    await rm(join(dir, 'state.json'), { force: true });
    await rm(join(dir, 'state.journal'), { force: true });
    store = await FileStore.open(dir);
    clock = Date.parse('2030-01-01T00:00:00Z');
    tokens = new TokenService(store, CA, () => clock);
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('token text carries id, secret and the CA pin; the store keeps only a hash of the secret', async () => {
    const { token, id, expiresAt } = await tokens.create({ host: 'h2', ttlSeconds: 600 });
    assert.match(token, /^vmesh1\.[a-z0-9]{6}\.[a-z0-9]{16,}\.[0-9a-f]{64}$/);
    const p = parseToken(token);
    assert.ok(p.ok);
    assert.equal(p.value.id, id);
    assert.equal(p.value.caHashHex, 'ab'.repeat(32));
    assert.equal(expiresAt.getTime(), clock + 600_000);
    const state = (await readFile(join(dir, 'state.json'), 'utf8')) + (await readFile(join(dir, 'state.journal'), 'utf8'));
    assert.ok(!state.includes(p.value.secret), 'secret not stored');
    assert.ok(state.includes(createHash('sha256').update(p.value.secret).digest('hex')));
    assert.deepEqual(
      tokens.list().map((t) => ({ id: t.id, host: t.host, used: t.used })),
      [{ id, host: 'h2', used: false }],
    );
  });

  test('single use: the second consume is VMESH_ERR_TOKEN_USED, also when racing', async () => {
    const { token } = await tokens.create({ host: 'h2', ttlSeconds: 600 });
    assert.deepEqual(await tokens.consume(token, 'h2'), { host: 'h2' });
    await assert.rejects(tokens.consume(token, 'h2'), { code: 'VMESH_ERR_TOKEN_USED' });
    assert.equal(tokens.list()[0]?.used, true);

    const racing = (await tokens.create({ host: 'h3', ttlSeconds: 600 })).token;
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => tokens.consume(racing)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) if (r.status === 'rejected') assert.equal(r.reason.code, 'VMESH_ERR_TOKEN_USED');
  });

  test('expiry follows the injected clock', async () => {
    const { token } = await tokens.create({ host: 'h2', ttlSeconds: 60 });
    clock += 60_000;
    await assert.rejects(tokens.consume(token), { code: 'VMESH_ERR_TOKEN_EXPIRED' });
    clock -= 1;
    assert.deepEqual(await tokens.consume(token), { host: 'h2' });
  });

  test('wrong secret, unknown id, malformed text, another CA or another host: VMESH_ERR_TOKEN_INVALID, token unharmed', async () => {
    const { token, id } = await tokens.create({ host: 'h2', ttlSeconds: 600 });
    const [v, , secret, pin] = token.split('.');
    const wrongSecret = `${v}.${id}.${secret?.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'))}.${pin}`;
    // One answer for a wrong secret and an unknown id: a caller cannot probe which token ids exist.
    const answer = async (text: string) => {
      try {
        await tokens.consume(text);
      } catch (e) {
        return `${(e as { code: string }).code}: ${(e as Error).message.replace(/join token [a-z0-9]{6}/, 'join token ID')}`;
      }
      return 'accepted';
    };
    const wrong = await answer(wrongSecret);
    assert.match(wrong, /^VMESH_ERR_TOKEN_INVALID: join token ID: unknown or wrong secret/);
    assert.equal(await answer(`${v}.zzzzzz.${secret}.${pin}`), wrong);
    assert.throws(() => tokens.check(wrongSecret), { code: 'VMESH_ERR_TOKEN_INVALID' });
    await assert.rejects(tokens.consume('abcdef.0123456789abcdef'), { code: 'VMESH_ERR_TOKEN_INVALID', message: /not a vmesh join token/ });
    await assert.rejects(tokens.consume(token, 'h9'), { code: 'VMESH_ERR_TOKEN_INVALID', message: /made for host "h2", not "h9"/ });
    await assert.rejects(new TokenService(store, OTHER_CA, () => clock).consume(token), {
      code: 'VMESH_ERR_TOKEN_INVALID',
      message: /another|CA/,
    });
    assert.deepEqual(await tokens.consume(token, 'h2'), { host: 'h2' });
  });

  test('revoke deletes; gc purges expired tokens only; tokens survive a restart', async () => {
    const a = await tokens.create({ host: 'a', ttlSeconds: 60 });
    const b = await tokens.create({ host: 'b', ttlSeconds: 3600 });
    const c = await tokens.create({ host: 'c', ttlSeconds: 3600 });
    await tokens.revoke(c.id);
    await assert.rejects(tokens.consume(c.token), { code: 'VMESH_ERR_TOKEN_INVALID' });
    await assert.rejects(tokens.revoke(c.id), { code: 'VMESH_ERR_NOT_FOUND' });
    clock += 120_000;
    assert.equal(await tokens.gc(), 1);
    assert.deepEqual(
      tokens.list().map((t) => t.id),
      [b.id],
    );
    await assert.rejects(tokens.consume(a.token), { code: 'VMESH_ERR_TOKEN_INVALID' });
    await store.close();
    store = await FileStore.open(dir);
    assert.deepEqual(await new TokenService(store, CA, () => clock).consume(b.token), { host: 'b' });
  });

  test('create checks host name and ttl', async () => {
    await assert.rejects(tokens.create({ host: 'Bad_Host', ttlSeconds: 60 }), { code: 'VMESH_ERR_INVALID_RESOURCE' });
    await assert.rejects(tokens.create({ host: 'h', ttlSeconds: 0 }), { code: 'VMESH_ERR_INVALID_RESOURCE' });
    await assert.rejects(tokens.create({ host: 'h', ttlSeconds: 1.5 }), { code: 'VMESH_ERR_INVALID_RESOURCE' });
  });
});
