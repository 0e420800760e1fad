import { z } from 'zod';
import type { Checker } from './checker.js';
import { cidrProblem, describeValue, hostProblem, namespaceMatchProblem, principalProblem, quote, serviceAccountProblem } from './names.js';
import { type DeepReadonly, enumOf, matchLabelsSelector, notImplemented, strings } from './schema-helpers.js';
import { checkTargetRefs, targetRef } from './target-ref.js';

/** Istio writes ports as strings ("8080"); vmesh also takes numbers, and hands them on as numbers. */
const portList = z.array(
  z.unknown().transform((v, ctx) => {
    const s = typeof v === 'number' || typeof v === 'string' ? String(v).trim() : '';
    if (!/^\d+$/.test(s)) {
      ctx.addIssue({ code: 'custom', message: `${describeValue(v)} is not a port number` });
      return z.NEVER;
    }
    return Number(s);
  }),
);

const source = z.strictObject({
  principals: strings.optional(),
  notPrincipals: strings.optional(),
  requestPrincipals: strings.optional(),
  notRequestPrincipals: strings.optional(),
  namespaces: strings.optional(),
  notNamespaces: strings.optional(),
  ipBlocks: strings.optional(),
  notIpBlocks: strings.optional(),
  remoteIpBlocks: strings.optional(),
  notRemoteIpBlocks: strings.optional(),
  serviceAccounts: strings.optional(),
  notServiceAccounts: strings.optional(),
  trustDomains: strings.optional(),
  notTrustDomains: strings.optional(),
});

const operation = z.strictObject({
  hosts: strings.optional(),
  notHosts: strings.optional(),
  ports: portList.optional(),
  notPorts: portList.optional(),
  methods: strings.optional(),
  notMethods: strings.optional(),
  paths: strings.optional(),
  notPaths: strings.optional(),
});

const condition = z.strictObject({ key: z.string(), values: strings.optional(), notValues: strings.optional() });

const rule = z.strictObject({
  from: z.array(z.strictObject({ source })).optional(),
  to: z.array(z.strictObject({ operation })).optional(),
  when: z.array(condition).optional(),
});

export const authorizationPolicySpec = z.strictObject({
  selector: matchLabelsSelector.optional(),
  targetRef: targetRef.optional(),
  targetRefs: z.array(targetRef).optional(),
  action: enumOf(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'], ['CUSTOM'], 'external authorization providers are not supported').default('ALLOW'),
  provider: notImplemented('only used with action CUSTOM'),
  rules: z.array(rule).optional(),
});

export type AuthorizationPolicySpec = DeepReadonly<z.output<typeof authorizationPolicySpec>>;
type Rule = DeepReadonly<z.output<typeof rule>>;

/** Checks a `when` condition's values by what its key compares. */
function checkCondition(path: string, key: string, values: readonly string[], c: Checker): void {
  const each = (problem: (v: string) => string | undefined) => {
    values.forEach((v, i) => {
      c.check(`${path}[${i}]`, v === '' ? 'must not be an empty string' : problem(v));
    });
  };
  if (MAP_KEY.test(key)) each(() => undefined);
  else if (key === 'source.ip' || key === 'destination.ip' || key === 'remote.ip') each(cidrProblem);
  else if (key === 'source.trustDomain') each(trustDomainProblem);
  else if (key === 'source.namespace') each(namespaceMatchProblem);
  else if (key === 'source.principal') each(principalProblem);
  else if (key === 'source.serviceAccount') serviceAccounts(path, values, c);
  else if (key === 'destination.port')
    each((v) => (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 65535 ? undefined : `${quote(v)} is not a port number`));
  else if (key === 'connection.sni') each((v) => hostProblem(v.replace(/^\*|\*$/g, 'x'), { short: true }));
}

/** Keys with a map part: `request.headers[x-name]`, `request.auth.claims[groups]` (nested: `[a][b]`), `experimental.envoy.filters.<f>[key]`. */
const MAP_KEY = /^(request\.headers|request\.auth\.claims|experimental\.envoy\.filters\.[^[\]]+)(\[[^[\]]+\])+$/;
const PLAIN_KEYS = [
  'source.ip',
  'remote.ip',
  'destination.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'source.trustDomain',
  'destination.port',
  'connection.sni',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
];

function checkKey(path: string, key: string, c: Checker): boolean {
  if (PLAIN_KEYS.includes(key)) return true;
  const m = MAP_KEY.exec(key);
  // Istio: a header has one name (`request.headers[a][b]` is not a header); claims may nest.
  if (m && (m[1] !== 'request.headers' || key.indexOf('][') < 0)) return true;
  if (key === 'destination.namespace') c.report(path, `attribute ${quote(key)} is replaced by the metadata.namespace`);
  else if (key.startsWith('destination.labels')) c.report(path, `attribute ${quote(key)} is replaced by the workload selector`);
  else
    c.report(
      path,
      `unknown condition key ${quote(key)}; want request.headers[<name>], request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[<name>], source.ip, remote.ip, source.namespace, source.principal, source.serviceAccount, source.trustDomain, destination.ip, destination.port, connection.sni or experimental.envoy.filters.<filter>[<key>]`,
    );
  return false;
}

/** Istio's CheckTrustDomainValues: at most one `*`, at the start or the end, and no `/`. */
function trustDomainProblem(v: string): string | undefined {
  const stars = v.split('*').length - 1;
  if (stars > 1) return `at most one wildcard is allowed, found ${quote(v)}`;
  if (stars === 1 && v !== '*' && !v.startsWith('*') && !v.endsWith('*'))
    return `wildcard is only allowed at the start or end, found ${quote(v)}`;
  if (v.includes('/')) return `trust domain must not contain "/", found ${quote(v)}`;
  return undefined;
}

/** Istio caps a service account list at 16 values, each `sa` or `ns/sa`. */
function serviceAccounts(path: string, values: readonly string[] | undefined, c: Checker): void {
  if (values === undefined) return;
  if (values.length > 16) c.report(path, `${values.length} service accounts; at most 16 are allowed`);
  values.forEach((v, i) => {
    c.check(`${path}[${i}]`, serviceAccountProblem(v));
  });
}

function checkRule(path: string, r: Rule, c: Checker): void {
  if (r.from?.length === 0) c.report(`${path}.from`, 'must not be an empty list (omit it to match any source)');
  r.from?.forEach((f, i) => {
    const p = `${path}.from[${i}].source`;
    const s = f.source;
    if (Object.values(s).every((v) => v === undefined)) c.report(p, 'source must set at least one field');
    for (const k of ['principals', 'notPrincipals'] as const) {
      s[k]?.forEach((v, j) => {
        c.principal(`${p}.${k}[${j}]`, v);
      });
    }
    for (const k of ['namespaces', 'notNamespaces'] as const) {
      s[k]?.forEach((v, j) => {
        c.check(`${p}.${k}[${j}]`, namespaceMatchProblem(v));
      });
    }
    for (const k of ['requestPrincipals', 'notRequestPrincipals'] as const) c.nonEmptyStrings(`${p}.${k}`, s[k]);
    for (const k of ['trustDomains', 'notTrustDomains'] as const) {
      s[k]?.forEach((v, j) => {
        c.check(`${p}.${k}[${j}]`, v === '' ? 'must not be an empty string' : trustDomainProblem(v));
      });
    }
    for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) {
      s[k]?.forEach((v, j) => {
        c.cidr(`${p}.${k}[${j}]`, v);
      });
    }
    for (const k of ['serviceAccounts', 'notServiceAccounts'] as const) serviceAccounts(`${p}.${k}`, s[k], c);
    // Istio: a service account already names its namespace, so the two ways of naming the peer do not mix.
    const sa = s.serviceAccounts !== undefined ? 'serviceAccounts' : s.notServiceAccounts !== undefined ? 'notServiceAccounts' : undefined;
    const other = (['principals', 'notPrincipals', 'namespaces', 'notNamespaces'] as const).find((k) => (s[k]?.length ?? 0) > 0);
    if (sa !== undefined && (s[sa]?.length ?? 0) > 0 && other !== undefined) {
      c.report(`${p}.${sa}`, `cannot be combined with ${other} in one source (a service account already names its namespace)`);
    }
  });
  if (r.to?.length === 0) c.report(`${path}.to`, 'must not be an empty list (omit it to match any operation)');
  r.to?.forEach((t, i) => {
    const p = `${path}.to[${i}].operation`;
    const o = t.operation;
    if (Object.values(o).every((v) => v === undefined)) c.report(p, 'operation must set at least one field');
    for (const k of ['ports', 'notPorts'] as const) {
      o[k]?.forEach((v, j) => {
        c.port(`${p}.${k}[${j}]`, v);
      });
    }
    for (const k of ['hosts', 'notHosts', 'methods', 'notMethods'] as const) c.nonEmptyStrings(`${p}.${k}`, o[k]);
    for (const k of ['paths', 'notPaths'] as const) {
      o[k]?.forEach((v, j) => {
        if (!v.startsWith('/') && !v.startsWith('*'))
          c.report(`${p}.${k}[${j}]`, `path ${quote(v)} must start with "/" (or "*" for a suffix match)`);
      });
    }
  });
  r.when?.forEach((w, i) => {
    const p = `${path}.when[${i}]`;
    if (w.key === '') {
      c.report(`${p}.key`, 'must not be empty');
      return;
    }
    if (!w.values?.length && !w.notValues?.length) c.report(p, `condition on ${quote(w.key)} needs values or notValues`);
    if (!checkKey(`${p}.key`, w.key, c)) return;
    checkCondition(`${p}.values`, w.key, w.values ?? [], c);
    checkCondition(`${p}.notValues`, w.key, w.notValues ?? [], c);
  });
}

export function checkAuthorizationPolicy(spec: AuthorizationPolicySpec, c: Checker): void {
  c.labels('spec.selector.matchLabels', spec.selector?.matchLabels);
  checkTargetRefs(spec, c);
  if (spec.action === 'DENY' && spec.rules === undefined) {
    c.report('spec.rules', 'a DENY policy without rules never matches; add a rule `{}` to deny every request');
  }
  spec.rules?.forEach((r, i) => {
    checkRule(`spec.rules[${i}]`, r, c);
    if (spec.action === 'DENY' && httpOnly(r)) {
      c.warn(
        `spec.rules[${i}]`,
        'this DENY rule uses only HTTP attributes, so it denies all traffic to TCP ports under its scope; specify the ports explicitly',
      );
    }
  });
}

/** Istio's warning condition: a DENY rule whose from (without to) or to have no TCP-level attribute. */
function httpOnly(r: Rule): boolean {
  const tcpFrom = r.from?.some((f) =>
    (
      [
        'principals',
        'notPrincipals',
        'namespaces',
        'notNamespaces',
        'ipBlocks',
        'notIpBlocks',
        'remoteIpBlocks',
        'notRemoteIpBlocks',
        'serviceAccounts',
        'notServiceAccounts',
      ] as const
    ).some((k) => f.source[k] !== undefined),
  );
  const tcpTo = r.to?.some((t) => t.operation.ports !== undefined || t.operation.notPorts !== undefined);
  const from = (r.from?.length ?? 0) > 0;
  const to = (r.to?.length ?? 0) > 0;
  return (from && !to && tcpFrom !== true) || (to && tcpTo !== true);
}
