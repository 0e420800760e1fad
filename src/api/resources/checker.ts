import type { MeshConfig } from '../mesh-config.js';
import { canonicalHost } from '../service-hosts.js';
import {
  cidrProblem,
  type HostRules,
  hostProblem,
  isDns1123Label,
  isPartialWildcardHost,
  labelKeyProblem,
  labelValueProblem,
  portProblem,
  principalProblem,
  quote,
  regexProblem,
  regexRewriteProblem,
} from './names.js';
import type { StringMatch } from './schema-helpers.js';

export interface CheckFinding {
  readonly path: string;
  readonly message: string;
  readonly unsupported: boolean;
  /** Accepted with a warning, where Istio's validation warns. */
  readonly warning?: boolean;
  /** Accepted with a warning saying what vmesh does instead of what Istio's proxy would (a warning too). */
  readonly notImplemented?: boolean;
}

/**
 * What a kind's semantic check gets: the resource's namespace, the mesh config, and a sink for findings.
 * The helpers check one value each and report at the path given (`spec.http[0].route[1].weight`).
 */
export class Checker {
  readonly findings: CheckFinding[] = [];

  constructor(
    readonly namespace: string,
    readonly mesh: MeshConfig,
  ) {}

  report(path: string, message: string): void {
    this.findings.push({ path, message, unsupported: false });
  }

  warn(path: string, message: string): void {
    this.findings.push({ path, message, unsupported: false, warning: true });
  }

  /** Accepted: vmesh does not run the feature and says what it does instead (e.g. denies, as Envoy would). */
  notImplemented(path: string, message: string): void {
    this.findings.push({ path, message, unsupported: false, warning: true, notImplemented: true });
  }

  unsupported(path: string, message: string): void {
    this.findings.push({ path, message, unsupported: true });
  }

  /** Reports `problem` when there is one; returns whether the value was fine. */
  check(path: string, problem: string | undefined): boolean {
    if (problem !== undefined) this.report(path, problem);
    return problem === undefined;
  }

  canonical(host: string): string {
    return canonicalHost(host, this.namespace, this.mesh);
  }

  /** `sni`: the host is matched as TLS SNI, where Envoy's server_names take no partial wildcard (`*db.example.com`). */
  host(path: string, host: string, rules: HostRules & { readonly sni?: boolean }): boolean {
    if (rules.sni && rules.wildcard && isPartialWildcardHost(host)) {
      const dot = host.indexOf('.');
      const instead = dot < 0 ? 'a whole first label, as in "*.example.com"' : `"*.${host.slice(dot + 1)}"`;
      this.unsupported(
        path,
        `partial wildcard SNI host ${quote(host)} is not implemented by vmesh (Envoy matches SNI by whole labels); use ${instead}`,
      );
      return false;
    }
    return this.check(path, hostProblem(host, rules));
  }

  port(path: string, port: number | undefined): void {
    if (port !== undefined) this.check(path, portProblem(port));
  }

  cidr(path: string, value: string): void {
    this.check(path, cidrProblem(value));
  }

  principal(path: string, value: string): void {
    this.check(path, principalProblem(value));
  }

  regex(path: string, value: string | undefined): void {
    if (value !== undefined) this.check(path, regexProblem(value));
  }

  regexRewrite(path: string, regex: string, rewrite: string): void {
    this.check(path, regexRewriteProblem(regex, rewrite));
  }

  stringMatch(path: string, m: StringMatch | undefined): void {
    if (m?.regex !== undefined) this.regex(`${path}.regex`, m.regex);
  }

  percentage(path: string, value: number | undefined, what = 'percentage'): void {
    if (value !== undefined && !(value >= 0 && value <= 100)) this.report(path, `${what} ${value} is not in 0..100`);
  }

  /** Label keys and values of a selector or a label set. */
  labels(path: string, labels: Readonly<Record<string, string>> | undefined): void {
    for (const [k, v] of Object.entries(labels ?? {})) {
      const p = `${path}[${JSON.stringify(k)}]`;
      if (this.check(p, labelKeyProblem(k))) this.check(p, labelValueProblem(k, v));
    }
  }

  nonEmptyStrings(path: string, values: readonly string[] | undefined): void {
    values?.forEach((v, i) => {
      if (v === '') this.report(`${path}[${i}]`, 'must not be an empty string');
    });
  }

  headerName(path: string, name: string): void {
    if (name === '' || !/^:?[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) this.report(path, `${quote(name)} is not a valid HTTP header name`);
  }

  /** Istio's exportTo: `.` (this namespace), `*` (all), `~` (none, ServiceEntry only) or namespace names. */
  exportTo(path: string, values: readonly string[] | undefined, allowNone: boolean): void {
    if (values === undefined) return;
    const seen = new Set<string>();
    values.forEach((v, i) => {
      const p = `${path}[${i}]`;
      const key = v === '.' ? this.namespace : v;
      if (seen.has(key)) this.report(p, `duplicate entry ${quote(v)}`);
      seen.add(key);
      if (v === '~' && !allowNone) this.report(p, '"~" (visible to no namespace) is allowed only in ServiceEntry');
      else if (v !== '.' && v !== '*' && v !== '~' && !isDns1123Label(v)) {
        this.report(p, `${quote(v)} is not ".", "*" or a namespace name`);
      }
    });
    if (values.length > 1 && values.includes('*')) this.report(path, '"*" (all namespaces) cannot be combined with other entries');
    if (values.length > 1 && values.includes('~')) this.report(path, '"~" (no namespace) cannot be combined with other entries');
  }
}
