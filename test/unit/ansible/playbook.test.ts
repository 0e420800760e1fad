import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const DIR = join(import.meta.dirname, '..', '..', '..', 'ansible');

function run(cmd: string, args: string[], pkg: string) {
  const r = spawnSync(cmd, args, { cwd: DIR, encoding: 'utf8', env: { ...process.env, ANSIBLE_NOCOLOR: '1', NO_COLOR: '1' } });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT')
    throw new Error(`${cmd} is missing: install the Debian package ${pkg}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('the playbook parses (ansible-playbook --syntax-check)', () => {
  const r = run('ansible-playbook', ['--syntax-check', '-i', 'inventory.example.ini', 'site.yml'], 'ansible-core');
  assert.equal(r.code, 0, r.out);
});

test('the playbook and roles pass ansible-lint (production profile)', () => {
  const r = run('ansible-lint', ['--offline', '--profile', 'production', 'site.yml'], 'ansible-lint');
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Passed/);
});
