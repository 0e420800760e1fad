import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatIssue, type Resource, type ValidationIssue, type ValidationWarning } from '../../../src/api/resource.js';
import { parseResources } from '../../../src/api/resource-parse.js';
import { checkResources } from '../../../src/api/resource-validate.js';
import { ErrorCode } from '../../../src/lib/errors.js';
import { assertGolden } from '../../support/golden.js';

// Istio's own YAML (samples, tests/testdata/config, the CRD validation data set), each file one apply, checked
// against what Istio says of it (istio.json, see README.md): a file Istio accepts is accepted (warnings allowed)
// or refused only by name as not implemented (VMESH_ERR_UNSUPPORTED_FIELD); a file Istio refuses is refused,
// naming a field. vmesh's exact verdicts are a golden file, so any change in them is reviewed.
const dir = fileURLToPath(new URL('./istio-corpus/', import.meta.url));

interface IstioVerdict {
  readonly origin: string;
  readonly istio: 'accepted' | 'refused';
  readonly istioError?: string;
  /** Where vmesh knowingly differs from Istio, and why. */
  readonly knownDifference?: string;
}

const istio = JSON.parse(readFileSync(join(dir, 'istio.json'), 'utf8')) as Record<string, IstioVerdict>;
const files = readdirSync(join(dir, 'files'))
  .filter((f) => f.endsWith('.yaml'))
  .sort();

interface Verdict {
  readonly kind: 'accepted' | 'unsupported' | 'refused';
  readonly errors: readonly ValidationIssue[];
  readonly warnings: readonly ValidationWarning[];
  readonly resources: number;
}

/**
 * Istio's CRD data set (crds_*) is validated one document at a time (pkg/config/validation/openapi_test.go
 * splits each file), so its documents may share a name; everything else is one apply, as Istio's docs use it.
 */
function checkApplies(file: string, resources: readonly Resource[]): Pick<Verdict, 'errors' | 'warnings'> {
  if (!file.startsWith('crds_')) return checkResources(resources);
  const each = resources.map((r) => checkResources([r]));
  return { errors: each.flatMap((c) => c.errors), warnings: each.flatMap((c) => c.warnings) };
}

function verdictOf(file: string): Verdict {
  const text = readFileSync(join(dir, 'files', file), 'utf8');
  const skipped: ValidationWarning[] = [];
  const parsed = parseResources(text, { source: file, warnings: skipped });
  const checked = parsed.ok ? checkApplies(file, parsed.value) : { errors: parsed.error, warnings: [] };
  const errors = checked.errors;
  const kind = errors.length === 0 ? 'accepted' : errors.every((e) => e.code === ErrorCode.UnsupportedField) ? 'unsupported' : 'refused';
  return { kind, errors, warnings: [...skipped, ...checked.warnings], resources: parsed.ok ? parsed.value.length : 0 };
}

describe("Istio's own YAML", () => {
  const verdicts = new Map(files.map((f) => [f, verdictOf(f)]));

  test('at least 100 files, each with Istio verdict and origin', () => {
    assert.ok(files.length >= 100, `only ${files.length} files`);
    assert.deepEqual(files, Object.keys(istio).sort(), 'istio.json lists exactly the files');
  });

  for (const f of files) {
    test(f, () => {
      const want = istio[f] as IstioVerdict;
      const v = verdictOf(f);
      const lines = v.errors.map((e) => `${e.code}: ${formatIssue(e)}`);
      for (const l of [...lines, ...v.warnings.map(formatIssue)]) assert.ok(!/[\r\n]/.test(l), `multi-line: ${l}`);
      if (want.knownDifference) {
        assert.equal(
          v.kind,
          want.istio === 'accepted' ? 'refused' : 'accepted',
          `no longer differs: drop knownDifference (${want.knownDifference})`,
        );
        return;
      }
      if (want.istio === 'accepted') {
        assert.notEqual(v.kind, 'refused', `Istio accepts it; vmesh refuses:\n${lines.join('\n')}`);
        if (v.kind === 'accepted') assert.ok(v.resources > 0 || v.warnings.length > 0, 'nothing read and nothing said');
      } else {
        assert.notEqual(v.kind, 'accepted', `Istio refuses it (${want.istioError}); vmesh accepts it`);
        assert.ok(
          v.errors.some((e) => e.path !== ''),
          `no issue names a field:\n${lines.join('\n')}`,
        );
      }
    });
  }

  test("vmesh's verdicts are the reviewed ones (UPDATE_GOLDEN=1 rewrites them)", () => {
    const out = files.map((f) => {
      const v = verdicts.get(f) as Verdict;
      const first = v.errors[0];
      const head = `${f}: ${v.kind}${v.warnings.length > 0 ? ` (${v.warnings.length} warning${v.warnings.length > 1 ? 's' : ''})` : ''}`;
      return first ? `${head}\n    ${first.code}: ${formatIssue(first)}` : head;
    });
    assertGolden(join(dir, 'verdicts.golden'), `${out.join('\n')}\n`);
  });
});
