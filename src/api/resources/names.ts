import { isIP } from 'node:net';
import { SafeRegex } from '../../lib/safe-regex.js';

/**
 * Syntax of the names that appear in resources: DNS labels, host names, addresses, label selectors,
 * SPIFFE-style principals and regexes. Each `*Problem` function returns why a value is wrong (a phrase
 * that completes "`<path>: `"), or undefined when it is fine.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS_LABEL.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split('.').every(isDns1123Label);
}

export function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}

/** A value as an error message shows it: strings quoted and cut short, containers by their kind. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

export interface HostRules {
  /** `*` alone, or a first label `*` (`*.example.com`), `*label` or `*-label` (`*db.example.com`), as Istio's grammar has it. */
  readonly wildcard?: boolean;
  /** A bare `*` (matches every host); only meaningful when `wildcard` is set. */
  readonly bareWildcard?: boolean;
  readonly ip?: boolean;
  /** A single-label name such as `reviews`. */
  readonly short?: boolean;
}

/** Istio's first-label wildcard: `*`, `*db` or `*-db` (its IsWildcardDNS1123Label). */
export function isPartialWildcardLabel(label: string): boolean {
  return label.length <= 63 && /^\*-?[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(label);
}

/** A host whose first label is a partial wildcard (`*db.example.com`, `*-db`, `*x`): Envoy's suffix wildcard form. */
export function isPartialWildcardHost(host: string): boolean {
  const dot = host.indexOf('.');
  return isPartialWildcardLabel((dot < 0 ? host : host.slice(0, dot)).toLowerCase());
}

/** Istio's host grammar: lowercase DNS labels, an optional trailing dot, a wildcard only in the first label. */
export function hostProblem(host: string, rules: HostRules): string | undefined {
  if (host === '') return 'host must not be empty';
  if (host.length > 255) return `host ${quote(host)} is longer than 255 characters`;
  if (isIP(host) !== 0) return rules.ip ? undefined : `an IP address (${host}) is not allowed here; a DNS name is required`;
  // Istio accepts upper case in hosts (DNS names compare case-insensitively); vmesh compares them lowercased.
  const name = (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase();
  if (name === '*') {
    if (!rules.wildcard || rules.bareWildcard === false) return 'a bare "*" host is not allowed here';
    return undefined;
  }
  const labels = name.split('.');
  if (labels[0] === '*' || isPartialWildcardLabel(labels[0] ?? '')) {
    if (!rules.wildcard) return `wildcard host ${quote(host)} is not allowed here`;
    labels.shift();
  }
  if (labels.some((l) => l.includes('*')))
    return `host ${quote(host)}: "*" is allowed only at the start of the first label, as in "*.example.com" or "*-db.example.com"`;
  for (const l of labels) {
    if (!isDns1123Label(l)) return `host ${quote(host)} has an invalid label ${quote(l)} (want lowercase letters, digits and "-")`;
  }
  const tld = labels[labels.length - 1] ?? '';
  if (/^\d+$/.test(tld)) return `host ${quote(host)} is neither an IP address nor a DNS name (all-numeric last label)`;
  if (!rules.short && labels.length === 1 && !name.startsWith('*')) {
    return `short host name ${quote(host)} is not allowed here; use a fully qualified name such as "${host}.default.svc.cluster.local"`;
  }
  return undefined;
}

export function ipProblem(s: string): string | undefined {
  return isIP(s) !== 0 ? undefined : `${quote(s)} is not an IPv4 or IPv6 address`;
}

/** An address or an address/prefix network. */
export function cidrProblem(s: string): string | undefined {
  const parts = s.split('/');
  const version = isIP(parts[0] ?? '');
  if (version === 0 || parts.length > 2) return `${quote(s)} is not an IP address or CIDR block`;
  if (parts.length === 2) {
    const max = version === 4 ? 32 : 128;
    const p = parts[1] ?? '';
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) return `${quote(s)} has an invalid prefix length (want 0-${max})`;
  }
  return undefined;
}

export function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

export function portProblem(n: number): string | undefined {
  return isPort(n) ? undefined : `${n} is not a port number (1-65535)`;
}

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;

/** Kubernetes label syntax, which Istio's selectors and vmesh's registrations share. */
export function labelKeyProblem(key: string): string | undefined {
  if (key.includes('*')) return `label key ${quote(key)}: wildcards are not supported in selectors`;
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) return `label key ${quote(key)} has an invalid prefix (want a DNS subdomain)`;
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return `label key ${quote(key)} is invalid (want at most 63 letters, digits, "-", "_" or ".", starting and ending alphanumeric)`;
  }
  return undefined;
}

export function labelValueProblem(key: string, value: string): string | undefined {
  if (value.includes('*')) return `label ${key}: wildcards are not supported in selectors`;
  if (value === '') return undefined;
  if (value.length > 63 || !LABEL_NAME.test(value)) {
    return `label ${key} has an invalid value ${quote(value)} (want at most 63 letters, digits, "-", "_" or ".", starting and ending alphanumeric)`;
  }
  return undefined;
}

/**
 * An Istio principal: any non-empty string, matched exactly against the peer's SPIFFE ID without its
 * `spiffe://` (`cluster.local/ns/default/sa/sleep`), or `*`, or a prefix/suffix match with a leading or trailing
 * `*`. Istio accepts every other string as well and it then simply matches no peer (or exactly that one).
 */
export function principalProblem(p: string): string | undefined {
  return p === '' ? 'principal must not be empty' : undefined;
}

/** Namespaces in AuthorizationPolicy sources: a DNS label, `*`, or a prefix/suffix match with one `*`. */
/**
 * An AuthorizationPolicy service account: `sa` (in the policy's namespace) or `ns/sa`, no wildcard, at most 320
 * characters -- Istio's rules for source.serviceAccounts.
 */
export function serviceAccountProblem(v: string): string | undefined {
  const want = 'want "serviceAccount" or "namespace/serviceAccount"';
  if (v === '') return 'must not be an empty string';
  if (v.includes('*')) return `${quote(v)}: wildcards are not allowed in service accounts`;
  if (v.split('/').length > 2) return `${quote(v)}: ${want}`;
  if (v.length > 320) return `${quote(v.slice(0, 40))}...: longer than 320 characters`;
  const [ns, sa] = v.includes('/') ? v.split('/') : [undefined, v];
  if (ns === '') return `${quote(v)}: empty namespace; ${want}`;
  if (sa === '') return `${quote(v)}: empty service account; ${want}`;
  return undefined;
}

export function namespaceMatchProblem(ns: string): string | undefined {
  if (ns === '*') return undefined;
  const core = ns.startsWith('*') ? ns.slice(1) : ns.endsWith('*') ? ns.slice(0, -1) : ns;
  if (core.includes('*') || !/^[-a-z0-9]+$/.test(core) || (core === ns && !isDns1123Label(ns))) {
    return `${quote(ns)} is not a namespace (want a DNS label, "*", or a prefix or suffix match with "*")`;
  }
  return undefined;
}

const MAX_REGEX_LENGTH = 1024;

/**
 * Istio's regexes are RE2 (full match), validated with Go's regexp; the proxy matches them with the same syntax
 * in linear time (lib/safe-regex). So what RE2 refuses (lookaround, backreferences, `\C`, repeats over 1000) or
 * compiles too large is refused here, at apply, rather than by every proxy.
 */
export function regexProblem(src: string): string | undefined {
  if (src === '') return 'regex must not be empty';
  if (src.length > MAX_REGEX_LENGTH) return `regex is longer than ${MAX_REGEX_LENGTH} characters`;
  try {
    SafeRegex.compile(src);
    return undefined;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    // RE2's messages for the JavaScript features people reach for most do not name them.
    if (/`\(\?(<?[=!])/.test(why)) return `regex ${quote(src)} uses lookaround, which RE2 (Istio's regex syntax) does not support`;
    if (/invalid escape sequence: `\\([1-9]|k)/.test(why)) {
      return `regex ${quote(src)} uses a backreference, which RE2 (Istio's regex syntax) does not support`;
    }
    return `regex ${quote(src)} is not valid RE2 (Istio's regex syntax): ${why}`;
  }
}

/** An RE2 rewrite string for a valid regex may name only groups the regex has (Envoy checks regex_rewrite so). */
export function regexRewriteProblem(regex: string, rewrite: string): string | undefined {
  if (regexProblem(regex) !== undefined) return undefined;
  try {
    SafeRegex.compile(regex).substitution(rewrite);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

export const SERVICE_PROTOCOLS = ['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'GRPC-WEB', 'TCP', 'TLS', 'MONGO', 'MYSQL', 'REDIS'] as const;

/** Protocols Istio knows and vmesh does not carry. */
export const UNIMPLEMENTED_PROTOCOLS = ['UDP', 'HTTP_PROXY'] as const;

export function isHttpProtocol(p: string): boolean {
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-WEB';
}

export function isTlsProtocol(p: string): boolean {
  return p === 'HTTPS' || p === 'TLS';
}

/** Damerau-free edit distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The candidate closest to `word`, if it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const camel = word.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  if (camel !== word && candidates.includes(camel)) return camel;
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}
