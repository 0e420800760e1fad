import { isIP } from 'node:net';
import { routingClaim } from '../routing-claim.js';
import { hostMatches } from '../service-hosts.js';
import type { Checker } from './checker.js';
import { isDns1123Label, quote } from './names.js';
import type { Destination, Headers, HttpRoute, VirtualServiceSpec } from './networking-virtual-service.js';

/** Envoy's retry-on policies that Istio accepts in `retries.retryOn` (besides HTTP status codes). */
const RETRY_ON = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'envoy-ratelimited',
  'http3-post-connect-failure',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE']);

export const GRPC_STATUSES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

export const MESH_GATEWAY = 'mesh';

/** `mesh`, `<namespace>/<name>` or `<name>` (in the VirtualService's namespace). */
export function checkGatewayName(path: string, name: string, c: Checker): void {
  if (name === MESH_GATEWAY) return;
  const parts = name.split('/');
  if (parts.length === 1 && name.includes('.')) {
    c.report(path, `gateway ${quote(name)}: write it as <namespace>/<name>, not the legacy dotted form`);
  } else if (parts.length > 2 || !parts.every(isDns1123Label)) {
    c.report(path, `${quote(name)} is not a gateway reference (want "mesh", "<namespace>/<name>" or "<name>")`);
  }
}

export function checkDestination(path: string, d: Destination, c: Checker): void {
  if (d.host === '*' || d.host.startsWith('*.')) {
    c.report(`${path}.host`, `destination host ${quote(d.host)} must name one service, not a wildcard`);
  } else {
    c.host(`${path}.host`, d.host, { short: true });
  }
  if (d.subset !== undefined && !isDns1123Label(d.subset))
    c.report(`${path}.subset`, `subset name ${quote(d.subset)} is not a DNS-1123 label`);
  c.port(`${path}.port.number`, d.port?.number);
}

function checkWeights(path: string, routes: readonly { readonly weight?: number | undefined }[], c: Checker): void {
  let total = 0;
  routes.forEach((r, i) => {
    const w = r.weight ?? 0;
    if (w < 0 || w > 100) c.report(`${path}[${i}].weight`, `weight ${w} is not in 0..100`);
    total += w;
  });
  if (routes.length > 1 && total !== 100) {
    c.report(path, `weights of the ${routes.length} destinations sum to ${total}; with more than one destination they must sum to 100`);
  }
}

export function checkHeaders(path: string, h: Headers | undefined, c: Checker): void {
  for (const side of ['request', 'response'] as const) {
    const ops = h?.[side];
    if (!ops) continue;
    for (const op of ['set', 'add'] as const) {
      for (const [name, value] of Object.entries(ops[op] ?? {})) {
        const p = `${path}.${side}.${op}[${JSON.stringify(name)}]`;
        c.headerName(p, name);
        // Envoy reads %VAR% in header values; a lone % is a config error it would NACK.
        if ((value.split('%').length - 1) % 2 !== 0) c.report(p, 'a single "%" is not allowed; write "%%" for a literal percent sign');
      }
    }
    ops.remove?.forEach((name, i) => {
      c.headerName(`${path}.${side}.remove[${i}]`, name);
    });
  }
}

function checkHttpRoute(path: string, r: HttpRoute, c: Checker): void {
  const actions = (['route', 'redirect', 'directResponse'] as const).filter((k) => r[k] !== undefined);
  if (actions.length === 0) c.report(path, 'one of route, redirect or directResponse is required');
  if (actions.length > 1) c.report(path, `set only one of route, redirect and directResponse (found ${actions.join(' and ')})`);
  if (r.rewrite && (r.redirect || r.directResponse))
    c.report(`${path}.rewrite`, 'rewrite cannot be combined with redirect or directResponse');

  r.match?.forEach((m, i) => {
    const p = `${path}.match[${i}]`;
    for (const k of ['uri', 'scheme', 'method', 'authority'] as const) c.stringMatch(`${p}.${k}`, m[k]);
    for (const k of ['headers', 'withoutHeaders', 'queryParams'] as const) {
      for (const [name, sm] of Object.entries(m[k] ?? {})) {
        const hp = `${p}.${k}[${JSON.stringify(name)}]`;
        const claim = k !== 'queryParams' ? routingClaim(name) : undefined;
        if (claim !== undefined) {
          if (claim.length === 0)
            c.report(hp, `${JSON.stringify(name)} names no claim; write @request.auth.claims.<claim> or @request.auth.claims[<claim>]`);
        } else if (k !== 'queryParams') c.headerName(hp, name);
        else if (name === '') c.report(hp, 'query parameter name must not be empty');
        c.stringMatch(hp, sm);
      }
    }
    c.port(`${p}.port`, m.port);
    c.labels(`${p}.sourceLabels`, m.sourceLabels);
    m.gateways?.forEach((g, j) => {
      checkGatewayName(`${p}.gateways[${j}]`, g, c);
    });
    if (m.sourceNamespace !== undefined && !isDns1123Label(m.sourceNamespace)) c.report(`${p}.sourceNamespace`, 'is not a namespace name');
  });

  if (r.route?.length === 0) c.report(`${path}.route`, 'at least one destination is required');
  r.route?.forEach((d, i) => {
    checkDestination(`${path}.route[${i}].destination`, d.destination, c);
    checkHeaders(`${path}.route[${i}].headers`, d.headers, c);
  });
  if (r.route) checkWeights(`${path}.route`, r.route, c);

  const rd = r.redirect;
  if (rd) {
    const p = `${path}.redirect`;
    if (
      rd.uri === undefined &&
      rd.authority === undefined &&
      rd.port === undefined &&
      rd.derivePort === undefined &&
      rd.scheme === undefined
    ) {
      c.report(p, 'redirect must set uri, authority, scheme, port or derivePort');
    }
    if (rd.port !== undefined && rd.derivePort !== undefined) c.report(p, 'set only one of port and derivePort');
    c.port(`${p}.port`, rd.port);
    if (rd.scheme !== undefined && rd.scheme !== 'http' && rd.scheme !== 'https') c.report(`${p}.scheme`, 'must be "http" or "https"');
    if (rd.redirectCode !== undefined && (rd.redirectCode < 300 || rd.redirectCode > 399)) {
      c.report(`${p}.redirectCode`, `${rd.redirectCode} is not a redirect status (3xx)`);
    }
  }
  const dr = r.directResponse;
  if (dr && (dr.status < 200 || dr.status > 599))
    c.report(`${path}.directResponse.status`, `${dr.status} is not an HTTP status in 200..599`);

  const rw = r.rewrite;
  if (rw) {
    if (rw.uri === undefined && rw.authority === undefined && rw.uriRegexRewrite === undefined) {
      c.report(`${path}.rewrite`, 'rewrite must set uri, authority or uriRegexRewrite');
    }
    if (rw.uri !== undefined && rw.uriRegexRewrite !== undefined) c.report(`${path}.rewrite`, 'set only one of uri and uriRegexRewrite');
    c.regex(`${path}.rewrite.uriRegexRewrite.match`, rw.uriRegexRewrite?.match);
    if (rw.uriRegexRewrite) c.regexRewrite(`${path}.rewrite.uriRegexRewrite.rewrite`, rw.uriRegexRewrite.match, rw.uriRegexRewrite.rewrite);
  }

  const rt = r.retries;
  if (rt) {
    const p = `${path}.retries`;
    if (
      (rt.attempts ?? 0) === 0 &&
      (rt.perTryTimeout !== undefined || rt.retryOn !== undefined || rt.retryRemoteLocalities !== undefined)
    ) {
      c.report(p, 'retry settings are given but attempts is 0 (retries disabled)');
    }
    rt.retryOn?.split(',').forEach((policy) => {
      const s = policy.trim();
      if (!RETRY_ON.has(s) && !/^[1-5]\d\d$/.test(s)) c.report(`${p}.retryOn`, `${quote(s)} is not a retry policy or an HTTP status code`);
    });
  }

  const f = r.fault;
  if (f) {
    if (!f.delay && !f.abort) c.report(`${path}.fault`, 'fault must set delay, abort or both');
    if (f.abort && f.abort.httpStatus === undefined && f.abort.grpcStatus === undefined)
      c.warn(`${path}.fault.abort`, 'abort configured, but error type (httpStatus or grpcStatus) not set: nothing is aborted');
    c.percentage(`${path}.fault.delay.percentage.value`, f.delay?.percentage?.value);
    c.percentage(`${path}.fault.abort.percentage.value`, f.abort?.percentage?.value);
    const status = f.abort?.httpStatus;
    if (status !== undefined && (status < 200 || status > 599))
      c.report(`${path}.fault.abort.httpStatus`, `${status} is not an HTTP status in 200..599`);
    const grpc = f.abort?.grpcStatus;
    if (grpc !== undefined && !(GRPC_STATUSES as readonly string[]).includes(grpc)) {
      c.report(`${path}.fault.abort.grpcStatus`, `${quote(grpc)} is not a gRPC status name (e.g. UNAVAILABLE)`);
    }
  }

  if (r.mirror) checkDestination(`${path}.mirror`, r.mirror, c);
  if (r.mirrorPercentage && !r.mirror) c.report(`${path}.mirrorPercentage`, 'is set without mirror');
  c.percentage(`${path}.mirrorPercentage.value`, r.mirrorPercentage?.value);

  const cors = r.corsPolicy;
  if (cors) {
    const p = `${path}.corsPolicy`;
    cors.allowOrigins?.forEach((o, i) => {
      c.stringMatch(`${p}.allowOrigins[${i}]`, o);
    });
    cors.allowMethods?.forEach((m, i) => {
      if (!HTTP_METHODS.has(m)) c.report(`${p}.allowMethods[${i}]`, `${quote(m)} is not an HTTP method (uppercase, e.g. GET)`);
    });
    for (const k of ['allowHeaders', 'exposeHeaders'] as const) {
      cors[k]?.forEach((h, i) => {
        if (h !== '*') c.headerName(`${p}.${k}[${i}]`, h);
      });
    }
    if (cors.maxAge !== undefined && cors.maxAge % 1000 !== 0)
      c.report(`${p}.maxAge`, 'maxAge is sent in whole seconds; use a whole number of seconds');
  }
  checkHeaders(`${path}.headers`, r.headers, c);
}

function checkL4Match(
  path: string,
  m: {
    readonly destinationSubnets?: readonly string[];
    readonly port?: number;
    readonly sourceLabels?: Readonly<Record<string, string>>;
    readonly gateways?: readonly string[];
  },
  c: Checker,
): void {
  m.destinationSubnets?.forEach((s, i) => {
    c.cidr(`${path}.destinationSubnets[${i}]`, s);
  });
  c.port(`${path}.port`, m.port);
  c.labels(`${path}.sourceLabels`, m.sourceLabels);
  m.gateways?.forEach((g, i) => {
    checkGatewayName(`${path}.gateways[${i}]`, g, c);
  });
}

/** Istio's VirtualService rules, except those that need other resources (subsets, gateways): see resource-validate.ts. */
export function checkVirtualService(spec: VirtualServiceSpec, c: Checker): void {
  const gateways = spec.gateways ?? [];
  const appliesToMesh = gateways.length === 0 || gateways.includes(MESH_GATEWAY);
  if (spec.hosts.length === 0) c.report('spec.hosts', 'at least one host is required');
  const valid: Array<{ i: number; host: string }> = [];
  spec.hosts.forEach((h, i) => {
    if (!c.host(`spec.hosts[${i}]`, h, { wildcard: true, ip: true, short: true })) return;
    if (h === '*' && appliesToMesh)
      c.report(`spec.hosts[${i}]`, 'host "*" is not allowed for a VirtualService bound to the mesh (sidecars); bind it to a gateway');
    else valid.push({ i, host: c.canonical(h) });
  });
  for (const a of valid) {
    const dup = valid.find((b) => b.i < a.i && (hostMatches(b.host, a.host) || hostMatches(a.host, b.host)));
    if (dup)
      c.report(`spec.hosts[${a.i}]`, `host ${quote(spec.hosts[a.i] ?? '')} overlaps hosts[${dup.i}] ${quote(spec.hosts[dup.i] ?? '')}`);
  }
  gateways.forEach((g, i) => {
    checkGatewayName(`spec.gateways[${i}]`, g, c);
  });
  if (!spec.http?.length && !spec.tcp?.length && !spec.tls?.length) c.report('spec', 'at least one of http, tcp or tls routes is required');

  spec.http?.forEach((r, i) => {
    checkHttpRoute(`spec.http[${i}]`, r, c);
  });
  spec.tcp?.forEach((r, i) => {
    const p = `spec.tcp[${i}]`;
    r.match?.forEach((m, j) => {
      checkL4Match(`${p}.match[${j}]`, m, c);
    });
    if (r.route.length === 0) c.report(`${p}.route`, 'at least one destination is required');
    r.route.forEach((d, j) => {
      checkDestination(`${p}.route[${j}].destination`, d.destination, c);
    });
    checkWeights(`${p}.route`, r.route, c);
  });
  const vsHosts = valid.map((v) => v.host);
  spec.tls?.forEach((r, i) => {
    const p = `spec.tls[${i}]`;
    if (r.match.length === 0) c.report(`${p}.match`, 'a TLS route needs at least one match with sniHosts');
    r.match.forEach((m, j) => {
      const mp = `${p}.match[${j}]`;
      checkL4Match(mp, m, c);
      if (m.sniHosts.length === 0) c.report(`${mp}.sniHosts`, 'at least one SNI host is required');
      m.sniHosts.forEach((h, k) => {
        if (isIP(h) !== 0) {
          // Istio accepts it, warning: an IP is matched as the SNI string, which few clients send.
          c.warn(`${mp}.sniHosts[${k}]`, `using an IP address (${h}) goes against the SNI spec and most clients do not send it`);
          return;
        }
        if (!c.host(`${mp}.sniHosts[${k}]`, h, { wildcard: true, short: true, sni: true })) return;
        const sni = c.canonical(h);
        if (!vsHosts.some((vh) => hostMatches(vh, sni))) {
          c.report(
            `${mp}.sniHosts[${k}]`,
            `SNI host ${quote(h)} is not covered by any of the VirtualService's hosts (${spec.hosts.join(', ')})`,
          );
        }
      });
    });
    if (r.route.length === 0) c.report(`${p}.route`, 'at least one destination is required');
    r.route.forEach((d, j) => {
      checkDestination(`${p}.route[${j}].destination`, d.destination, c);
    });
    checkWeights(`${p}.route`, r.route, c);
  });
  c.exportTo('spec.exportTo', spec.exportTo, false);
}
