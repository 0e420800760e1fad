import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadAgentConfig } from '../../../src/config/agent.js';
import { loadCliConfig } from '../../../src/config/cli.js';
import { loadControllerConfig } from '../../../src/config/controller.js';
import { runCli } from '../../support/controller-harness.js';

/* Secrets never come from a flag's value (ps shows it to every user): files or the environment only. */

const dir = mkdtempSync(join(tmpdir(), 'vmesh-secret-flags-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const refused = (flag: string) => ({
  code: 'VMESH_ERR_USAGE',
  message: new RegExp(`^--${flag} puts a secret on the command line, where ps shows it`),
});

describe('secrets come from files or the environment', () => {
  test('agent: --token is refused; --token-file and VMESH_JOIN_TOKEN are read', () => {
    const base = { controller: ['127.0.0.1:15012'], dataDir: dir };
    assert.throws(() => loadAgentConfig({ flags: { ...base, token: 'vmesh1.x' }, env: {}, file: {} }), refused('token'));
    assert.equal(loadAgentConfig({ flags: base, env: { VMESH_JOIN_TOKEN: 'vmesh1.y' }, file: {} }).token, 'vmesh1.y');
    assert.equal(loadAgentConfig({ flags: { ...base, tokenFile: '/etc/t' }, env: {}, file: {} }).tokenFile, '/etc/t');
  });

  test('controller: --consul-token is refused; --consul-token-file and VMESH_CONSUL_TOKEN are read', () => {
    const base = { dataDir: dir, consul: 'http://127.0.0.1:8500' };
    assert.throws(() => loadControllerConfig({ flags: { ...base, consulToken: 's3cret' }, env: {}, file: {} }), refused('consul-token'));
    const f = join(dir, 'consul-token');
    writeFileSync(f, 's3cret\n', { mode: 0o600 });
    assert.equal(loadControllerConfig({ flags: { ...base, consulTokenFile: f }, env: {}, file: {} }).consul?.token, 's3cret');
    assert.equal(loadControllerConfig({ flags: base, env: { VMESH_CONSUL_TOKEN: 'e' }, file: {} }).consul?.token, 'e');
    assert.throws(() => loadControllerConfig({ flags: { ...base, consulTokenFile: join(dir, 'none') }, env: {}, file: {} }), {
      code: 'VMESH_ERR_INVALID_CONFIG',
      message: /Consul token file .*none: ENOENT/,
    });
  });

  test('CLI: the admin --token is refused; --token-file and VMESH_TOKEN are read', () => {
    assert.throws(() => loadCliConfig({ flags: { token: 'admintoken', dataDir: dir }, env: {}, file: {} }), refused('token'));
    assert.equal(loadCliConfig({ flags: { dataDir: dir }, env: { VMESH_TOKEN: 'a' }, file: {} }).token, 'a');
  });

  test('vmesh agent --token T exits with the one-line error', async () => {
    const r = await runCli(['agent', '--controller', '127.0.0.1:1', '--token', 'vmesh1.abc', '--data-dir', dir]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr.trim(),
      /^VMESH_ERR_USAGE: --token puts a secret on the command line, where ps shows it to every user: use --token-file F or the VMESH_JOIN_TOKEN environment variable instead$/m,
    );
  });
});
