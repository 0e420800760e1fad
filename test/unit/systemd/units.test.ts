import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';

const UNITS = join(import.meta.dirname, '..', '..', '..', 'systemd');

function analyze(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error('systemd-analyze is missing: install the Debian package systemd');
  }
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('systemd units', () => {
  for (const [unit, maxExposure] of [
    ['vmesh-controller.service', 2.0],
    ['vmesh-agent.service', 4.0],
  ] as const) {
    test(`${unit}: systemd-analyze verify is clean`, () => {
      const r = analyze(['verify', join(UNITS, unit)]);
      assert.equal(r.code, 0, r.out);
      assert.equal(r.out.trim(), '', `verify printed warnings:\n${r.out}`);
    });

    test(`${unit}: exposure ≤ ${maxExposure} (systemd-analyze security --offline)`, () => {
      const r = analyze(['security', '--offline=yes', join(UNITS, unit)]);
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.out);
      assert.ok(m, `no exposure level in:\n${r.out}`);
      assert.ok(Number(m[1]) <= maxExposure, `exposure ${m[1]} > ${maxExposure}`);
    });
  }

  test('the agent removes capture when it stops, the controller keeps no capabilities, both have a MemoryMax', () => {
    const agent = execFileSync('cat', [join(UNITS, 'vmesh-agent.service')], { encoding: 'utf8' });
    assert.match(agent, /^ExecStopPost=.* capture remove$/m);
    const ctl = execFileSync('cat', [join(UNITS, 'vmesh-controller.service')], { encoding: 'utf8' });
    assert.match(ctl, /^CapabilityBoundingSet=$/m);
    assert.match(ctl, /^NoNewPrivileges=yes$/m);
    // A memory ceiling on both, each with the reason beside it (issue 15: a flood grew the controller without bound).
    for (const unit of [agent, ctl]) assert.match(unit, /^# .*\n(# .*\n)*MemoryMax=\d+[MG]$/m);
  });
});
