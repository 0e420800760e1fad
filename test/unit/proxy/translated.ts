import assert from 'node:assert/strict';
import type { Resource } from '../../../src/api/resource.js';
import { parseResources } from '../../../src/api/resource-parse.js';
import { compileProxyConfig } from '../../../src/proxy/compile/index.js';
import type { ProxyConfig } from '../../../src/proxy/proxy-config.js';
import type { AppliedConfig } from '../../../src/xds/agent-sync.js';
import { decodeAnyDeep } from '../../../src/xds/decode-deep.js';
import { makeSnapshot } from '../../../src/xds/snapshot.js';
import { applyEnvoyFilters, translateNode } from '../../../src/xds/translate/index.js';
import { CDS, EDS, LDS, RDS } from '../../../src/xds/type-urls.js';
import { bookinfoInput, bookinfoResources } from '../xds/translate/fixture.js';

/** The translation fixture's resources with `yaml`'s in place of those of the same kind, namespace and name. */
export function fixtureWith(yaml: string): Resource[] {
  const parsed = parseResources(yaml, { source: 'test.yaml' });
  assert.ok(parsed.ok, parsed.ok ? '' : JSON.stringify(parsed.error));
  const key = (r: Resource) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
  const replaced = new Set(parsed.value.map(key));
  return [...bookinfoResources().filter((r) => !replaced.has(key(r))), ...parsed.value];
}

/**
 * What the proxy of fixture node h1 (or the gateway gw) compiles from the translator's output for `resources`, EnvoyFilter
 * patches applied (encoded and decoded, as the agent applies it).
 */
export function compiledFor(resources: readonly Resource[], node: 'h1' | 'gw' = 'h1'): ProxyConfig {
  const input = bookinfoInput(node, { resources: [...resources] });
  const snap = makeSnapshot('v1', applyEnvoyFilters(input, translateNode(input)));
  const decoded: Record<string, Record<string, unknown>> = {};
  for (const t of [CDS, EDS, LDS, RDS]) {
    decoded[t] = Object.fromEntries([...(snap.resources.get(t) ?? new Map())].map(([n, r]) => [n, decodeAnyDeep(r.any)]));
  }
  const applied: AppliedConfig = { versions: { [CDS]: 'c', [EDS]: 'e', [LDS]: 'l', [RDS]: 'r' }, resources: decoded, updatedAt: '' };
  const c = compileProxyConfig(applied);
  if (!c.ok) assert.fail(c.error);
  return c.value;
}
