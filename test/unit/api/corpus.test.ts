import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatIssue, type ValidationIssue, type ValidationWarning } from '../../../src/api/resource.js';
import { parseResources } from '../../../src/api/resource-parse.js';
import { checkResources, validateResources } from '../../../src/api/resource-validate.js';

// Each file is one apply: parsed, then validated as a batch. Good files must pass without errors, and warn
// exactly where they say `# warn: <text>` (one line per warning); each bad file starts with `# expect: <text>`
// that one formatted issue must contain (and optionally `# code: <code>`).
const corpus = fileURLToPath(new URL('./corpus/', import.meta.url));

function files(kind: 'good' | 'bad'): string[] {
  return readdirSync(join(corpus, kind))
    .filter((f) => f.endsWith('.yaml'))
    .sort();
}

function issuesOf(file: string, text: string): ValidationIssue[] {
  const parsed = parseResources(text, { source: file });
  return parsed.ok ? validateResources(parsed.value) : parsed.error;
}

describe('good corpus', () => {
  const good = files('good');
  test('has at least 15 files', () => {
    assert.ok(good.length >= 15, `only ${good.length} good files`);
  });
  for (const f of good) {
    test(f, () => {
      const text = readFileSync(join(corpus, 'good', f), 'utf8');
      const skipped: ValidationWarning[] = [];
      const parsed = parseResources(text, { source: f, warnings: skipped });
      assert.ok(parsed.ok, `parse issues:\n${parsed.ok ? '' : parsed.error.map(formatIssue).join('\n')}`);
      assert.ok(parsed.value.length > 0, 'no resources found');
      const checked = checkResources(parsed.value);
      assert.deepEqual(checked.errors.map(formatIssue), []);
      const warnings = [...skipped, ...checked.warnings].map(formatIssue);
      const expected = [...text.matchAll(/^# warn: (.+)$/gm)].map((m) => (m[1] ?? '').trim());
      for (const w of expected)
        assert.ok(
          warnings.some((l) => l.includes(w)),
          `no warning contains ${JSON.stringify(w)}; got:\n${warnings.join('\n')}`,
        );
      assert.equal(warnings.length, expected.length, `warnings:\n${warnings.join('\n')}`);
    });
  }
});

describe('bad corpus', () => {
  const bad = files('bad');
  test('has at least 30 files', () => {
    assert.ok(bad.length >= 30, `only ${bad.length} bad files`);
  });
  for (const f of bad) {
    test(f, () => {
      const text = readFileSync(join(corpus, 'bad', f), 'utf8');
      const expect = /^# expect: (.+)$/.exec(text.split('\n')[0] ?? '')?.[1]?.trim();
      assert.ok(expect, 'the first line must be "# expect: <text>"');
      const code = /^# code: (\S+)$/m.exec(text)?.[1];
      const issues = issuesOf(f, text);
      const lines = issues.map(formatIssue);
      for (const l of lines) assert.ok(!/[\r\n]/.test(l), `multi-line issue: ${JSON.stringify(l)}`);
      const hit = issues.find((_, i) => lines[i]?.includes(expect));
      assert.ok(hit, `no issue contains ${JSON.stringify(expect)}; got:\n${lines.join('\n')}`);
      assert.equal(hit.code, code ?? 'VMESH_ERR_INVALID_RESOURCE');
    });
  }
});
