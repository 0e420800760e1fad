import { z } from 'zod';
import type { Checker } from './checker.js';
import { quote } from './names.js';
import { type DeepReadonly, int, matchLabelsSelector, str } from './schema-helpers.js';
import { checkTargetRefs, targetRef } from './target-ref.js';

/**
 * WasmPlugin (extensions.istio.io/v1alpha1), validated as Istio validates it (CRD schema + ValidateWasmPlugin).
 * vmesh's proxy runs no Wasm VM, so every plugin is a module that cannot be loaded; the proxy then does what
 * Envoy with istio-agent does for a module it could not fetch: FAIL_CLOSE and FAIL_RELOAD put a deny-all RBAC
 * filter in the plugin's place (403 to every request it would have seen), FAIL_OPEN an allow-all one (nothing).
 * The translator builds that (src/xds/translate/wasm-plugin.ts); the check below says so on every apply.
 */

/** A CRD `minLength: 1` string: checked in the schema, so it is reported even beside a bad metadata.name. */
const nonEmpty = z.string().min(1, { error: 'should be at least 1 chars long' });

const envVar = z.strictObject({
  name: nonEmpty,
  value: str.optional(),
  valueFrom: z.enum(['INLINE', 'HOST']).optional(),
});

const trafficSelector = z.strictObject({
  mode: z.enum(['UNDEFINED', 'CLIENT', 'SERVER', 'CLIENT_AND_SERVER']).optional(),
  ports: z.array(z.strictObject({ number: int })).optional(),
});

export const wasmPluginSpec = z.strictObject({
  selector: matchLabelsSelector.optional(),
  targetRef: targetRef.optional(),
  targetRefs: z.array(targetRef).optional(),
  url: str,
  sha256: str.optional(),
  imagePullPolicy: z.enum(['UNSPECIFIED_POLICY', 'IfNotPresent', 'Always']).optional(),
  imagePullSecret: nonEmpty.optional(),
  pluginConfig: z.record(z.string(), z.unknown()).optional(),
  pluginName: nonEmpty.optional(),
  phase: z.enum(['UNSPECIFIED_PHASE', 'AUTHN', 'AUTHZ', 'STATS']).optional(),
  priority: int.nullable().optional(),
  failStrategy: z.enum(['FAIL_CLOSE', 'FAIL_OPEN', 'FAIL_RELOAD']).optional(),
  vmConfig: z.strictObject({ env: z.array(envVar).optional() }).optional(),
  match: z.array(trafficSelector).optional(),
  type: z.enum(['UNSPECIFIED_PLUGIN_TYPE', 'HTTP', 'NETWORK']).optional(),
  verificationKey: str.optional(),
});

export type WasmPluginSpec = DeepReadonly<z.output<typeof wasmPluginSpec>>;

const URL_SCHEMES = new Set(['', 'http', 'https', 'oci', 'file']);
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/**
 * Istio's strict URL parse: the text as a request URI, or else with `http://` in front (so `registry/module`
 * is an OCI image name); the scheme must be one Istio fetches from.
 */
export function wasmUrlProblem(url: string): string | undefined {
  if (url === '') return 'url field needs to be set';
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  const text = scheme === undefined && !url.startsWith('/') ? `http://${url}` : url;
  if (/%(?![0-9A-Fa-f]{2})/.test(text) || /\s/.test(text)) return `${quote(url)} is not a URL (failed to parse url)`;
  if (scheme !== undefined && !URL_SCHEMES.has(scheme))
    return `url contains unsupported scheme: ${scheme} (want one of http, https, file, oci)`;
  try {
    new URL(text.startsWith('/') ? `file://${text}` : text);
  } catch {
    return `${quote(url)} is not a URL (failed to parse url)`;
  }
  return undefined;
}

/** Istio's selector rule of the security, telemetry and extensions kinds: a present selector without labels warns. */
export function checkMatchLabelsSelector(
  c: Checker,
  selector: { readonly matchLabels?: Readonly<Record<string, string>> } | undefined,
): void {
  if (selector === undefined) return;
  c.labels('spec.selector.matchLabels', selector.matchLabels);
  if (Object.keys(selector.matchLabels ?? {}).length === 0) c.warn('spec.selector', 'workload selector specified without labels');
}

export function checkLength(c: Checker, path: string, value: string | undefined, max: number): void {
  if (value !== undefined && value.length > max) c.report(path, `should be at most ${max} chars long (got ${value.length})`);
}

/** Whether the proxy denies what the plugin would have seen (the default FAIL_CLOSE, and FAIL_RELOAD). */
export function wasmFailsClosed(spec: Pick<WasmPluginSpec, 'failStrategy'>): boolean {
  return spec.failStrategy !== 'FAIL_OPEN';
}

export function checkWasmPlugin(spec: WasmPluginSpec, c: Checker): void {
  checkMatchLabelsSelector(c, spec.selector);
  checkTargetRefs(spec, c);
  if ((spec.targetRefs?.length ?? 0) > 16) c.report('spec.targetRefs', `must have at most 16 items (got ${spec.targetRefs?.length})`);
  c.check('spec.url', wasmUrlProblem(spec.url));
  if (spec.sha256 !== undefined && spec.sha256 !== '' && !/^[a-f0-9]{64}$/.test(spec.sha256))
    c.report('spec.sha256', `${quote(spec.sha256)} should match ^[a-f0-9]{64}$ (sha256 field must be 64 lowercase hex characters)`);
  checkLength(c, 'spec.imagePullSecret', spec.imagePullSecret, 253);
  checkLength(c, 'spec.pluginName', spec.pluginName, 256);
  const env = spec.vmConfig?.env ?? [];
  if (env.length > 256) c.report('spec.vmConfig.env', `must have at most 256 items (got ${env.length})`);
  const names = new Set<string>();
  env.forEach((e, i) => {
    const p = `spec.vmConfig.env[${i}]`;
    checkLength(c, `${p}.name`, e.name, 256);
    if (names.has(e.name)) c.report(`${p}.name`, `Duplicate value: ${quote(e.name)}`);
    names.add(e.name);
    checkLength(c, `${p}.value`, e.value, 2048);
    if (e.valueFrom === 'HOST' && e.value !== undefined) c.report(`${p}.value`, 'value may only be set when valueFrom is INLINE');
  });
  spec.match?.forEach((m, i) => {
    const seen = new Set<number>();
    m.ports?.forEach((port, j) => {
      const p = `spec.match[${i}].ports[${j}].number`;
      if (port.number < 1 || port.number > 65535) c.report(p, `${port.number} is out of range (want 1..65535)`);
      if (seen.has(port.number)) c.report(p, `Duplicate value: ${port.number}`);
      seen.add(port.number);
    });
  });
  // What the proxy will do is said only of a plugin that is accepted.
  if (c.findings.some((f) => !f.warning)) return;
  const type = spec.type === 'NETWORK' ? 'NETWORK' : 'HTTP';
  if (type === 'NETWORK' && !serverOnly(spec)) {
    c.unsupported(
      'spec.type',
      'a NETWORK plugin on the client side (outbound or gateway connections) is not implemented by vmesh; set every match[].mode to SERVER',
    );
    return;
  }
  const denied =
    type === 'HTTP'
      ? 'every request the plugin would see is denied (403 "RBAC: access denied")'
      : 'every connection the plugin would see is denied (closed; on HTTP ports each request gets 403)';
  c.notImplemented(
    'spec.url',
    wasmFailsClosed(spec)
      ? `vmesh's proxy runs no Wasm, so this module cannot be loaded; as Envoy does for a module it cannot load with failStrategy ${spec.failStrategy ?? 'FAIL_CLOSE'}, ${denied}`
      : `vmesh's proxy runs no Wasm, so this module cannot be loaded; with failStrategy FAIL_OPEN the plugin is skipped and traffic passes unprocessed`,
  );
}

/** Every traffic selector names SERVER: the plugin applies to inbound traffic only. */
function serverOnly(spec: WasmPluginSpec): boolean {
  const m = spec.match ?? [];
  return m.length > 0 && m.every((s) => s.mode === 'SERVER');
}
