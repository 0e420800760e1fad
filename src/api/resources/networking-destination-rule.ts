import { z } from 'zod';
import type { Checker } from './checker.js';
import { isDns1123Label, quote } from './names.js';
import {
  bool,
  type DeepReadonly,
  duration,
  int,
  notImplemented,
  num,
  oneOf,
  portSelector,
  str,
  stringMap,
  strings,
  uint,
} from './schema-helpers.js';

const consistentHash = z
  .strictObject({
    httpHeaderName: str.optional(),
    httpCookie: z
      .strictObject({ name: str, path: str.optional(), ttl: duration({ allowZero: true }), attributes: notImplemented() })
      .optional(),
    useSourceIp: bool.optional(),
    httpQueryParameterName: str.optional(),
    ringHash: z.strictObject({ minimumRingSize: uint.optional() }).optional(),
    maglev: z.strictObject({ tableSize: uint.optional() }).optional(),
    /** Deprecated in Istio in favour of ringHash.minimumRingSize; still read. */
    minimumRingSize: uint.optional(),
  })
  .superRefine(oneOf(['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'], { required: true }))
  .superRefine(oneOf(['ringHash', 'maglev', 'minimumRingSize'], { required: false }));

const localityLbSetting = z.strictObject({
  distribute: z.array(z.strictObject({ from: str, to: z.record(z.string(), uint) })).optional(),
  failover: z.array(z.strictObject({ from: str, to: str })).optional(),
  failoverPriority: notImplemented(),
  enabled: bool.optional(),
});

const loadBalancer = z
  .strictObject({
    simple: z.enum(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST']).optional(),
    consistentHash: consistentHash.optional(),
    localityLbSetting: localityLbSetting.optional(),
    /** Deprecated in Istio in favour of warmup.duration; still read. */
    warmupDurationSecs: duration().optional(),
    warmup: z.strictObject({ duration: duration().optional(), minimumPercent: num.optional(), aggression: num.optional() }).optional(),
  })
  .superRefine(oneOf(['simple', 'consistentHash'], { required: false }));

const connectionPool = z.strictObject({
  tcp: z
    .strictObject({
      maxConnections: uint.optional(),
      connectTimeout: duration().optional(),
      tcpKeepalive: z.strictObject({ probes: uint.optional(), time: duration().optional(), interval: duration().optional() }).optional(),
      maxConnectionDuration: duration().optional(),
      idleTimeout: duration().optional(),
    })
    .optional(),
  http: z
    .strictObject({
      http1MaxPendingRequests: uint.optional(),
      http2MaxRequests: uint.optional(),
      maxRequestsPerConnection: uint.optional(),
      maxRetries: uint.optional(),
      idleTimeout: duration().optional(),
      h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional(),
      useClientProtocol: bool.optional(),
      maxConcurrentStreams: uint.optional(),
      http2KeepAlive: z.strictObject({ interval: duration().optional(), timeout: duration().optional() }).optional(),
    })
    .optional(),
});

const outlierDetection = z.strictObject({
  consecutiveErrors: notImplemented('deprecated in Istio; use consecutive5xxErrors or consecutiveGatewayErrors'),
  consecutive5xxErrors: uint.optional(),
  consecutiveGatewayErrors: uint.optional(),
  consecutiveLocalOriginFailures: uint.optional(),
  splitExternalLocalOriginErrors: bool.optional(),
  interval: duration().optional(),
  baseEjectionTime: duration().optional(),
  maxEjectionPercent: int.optional(),
  minHealthPercent: int.optional(),
});

export const clientTls = z.strictObject({
  mode: z.enum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']).default('DISABLE'),
  clientCertificate: str.optional(),
  privateKey: str.optional(),
  caCertificates: str.optional(),
  credentialName: str.optional(),
  subjectAltNames: strings.optional(),
  sni: str.optional(),
  insecureSkipVerify: bool.optional(),
  caCrl: notImplemented(),
});

const portPolicyShape = {
  loadBalancer: loadBalancer.optional(),
  connectionPool: connectionPool.optional(),
  outlierDetection: outlierDetection.optional(),
  tls: clientTls.optional(),
};

const trafficPolicy = z.strictObject({
  ...portPolicyShape,
  portLevelSettings: z.array(z.strictObject({ port: portSelector, ...portPolicyShape })).optional(),
  tunnel: notImplemented(),
  proxyProtocol: notImplemented(),
});

export const destinationRuleSpec = z.strictObject({
  host: str,
  trafficPolicy: trafficPolicy.optional(),
  subsets: z.array(z.strictObject({ name: str, labels: stringMap.optional(), trafficPolicy: trafficPolicy.optional() })).optional(),
  exportTo: strings.optional(),
  workloadSelector: notImplemented('a DestinationRule applies to every client that can see it'),
});

export type DestinationRuleSpec = DeepReadonly<z.output<typeof destinationRuleSpec>>;
type TrafficPolicy = DeepReadonly<z.output<typeof trafficPolicy>>;
type PortPolicy = Omit<TrafficPolicy, 'portLevelSettings'>;

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}

function checkPolicy(path: string, p: PortPolicy, c: Checker): void {
  const lb = p.loadBalancer;
  const tableSize = lb?.consistentHash?.maglev?.tableSize;
  if (tableSize !== undefined && !isPrime(tableSize))
    c.report(`${path}.loadBalancer.consistentHash.maglev.tableSize`, `${tableSize} is not a prime number`);
  const warm = lb?.warmup;
  if (warm) {
    const wp = `${path}.loadBalancer.warmup`;
    if (warm.duration === undefined) c.report(`${wp}.duration`, 'is required (the time over which a new endpoint ramps up)');
    const min = warm.minimumPercent;
    if (min !== undefined && !(min >= 0 && min <= 100)) c.report(`${wp}.minimumPercent`, `${min} is not in 0..100`);
    if (warm.aggression !== undefined && !(warm.aggression > 0)) c.report(`${wp}.aggression`, `${warm.aggression} must be greater than 0`);
  }
  const loc = lb?.localityLbSetting;
  if (loc?.distribute?.length && loc.failover?.length)
    c.report(`${path}.loadBalancer.localityLbSetting`, 'set only one of distribute and failover');
  loc?.distribute?.forEach((d, i) => {
    const total = Object.values(d.to).reduce((a, b) => a + b, 0);
    if (total !== 100) c.report(`${path}.loadBalancer.localityLbSetting.distribute[${i}].to`, `weights sum to ${total}, want 100`);
  });
  loc?.failover?.forEach((f, i) => {
    const fp = `${path}.loadBalancer.localityLbSetting.failover[${i}]`;
    if (f.from === f.to) c.report(fp, 'from and to must be different regions');
    if (/[/*]/.test(f.from + f.to)) c.report(fp, 'failover names regions only (no "/" or "*")');
  });
  const cp = p.connectionPool;
  if (cp && !cp.tcp && !cp.http) c.report(`${path}.connectionPool`, 'set tcp, http or both');
  if (cp?.http?.h2UpgradePolicy === 'UPGRADE' && cp.http.useClientProtocol) {
    c.report(`${path}.connectionPool.http`, 'useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE');
  }
  const ka = cp?.http?.http2KeepAlive;
  if (ka) {
    // Istio requires both: a PING every interval, the connection closed when one is unanswered for timeout.
    const kp = `${path}.connectionPool.http.http2KeepAlive`;
    if (ka.interval === undefined) c.report(`${kp}.interval`, 'is required (how often to send an HTTP/2 PING)');
    if (ka.timeout === undefined) c.report(`${kp}.timeout`, 'is required (how long to wait for the PING ACK)');
  }
  const od = p.outlierDetection;
  if (od) {
    c.percentage(`${path}.outlierDetection.maxEjectionPercent`, od.maxEjectionPercent, 'maxEjectionPercent');
    c.percentage(`${path}.outlierDetection.minHealthPercent`, od.minHealthPercent, 'minHealthPercent');
    if (od.consecutiveLocalOriginFailures !== undefined && !od.splitExternalLocalOriginErrors) {
      c.report(`${path}.outlierDetection.consecutiveLocalOriginFailures`, 'needs splitExternalLocalOriginErrors: true');
    }
  }
  const tls = p.tls;
  if (tls) {
    const tp = `${path}.tls`;
    const files = tls.clientCertificate !== undefined || tls.privateKey !== undefined || tls.caCertificates !== undefined;
    if (tls.mode === 'ISTIO_MUTUAL' && (files || tls.credentialName !== undefined)) {
      c.report(tp, 'ISTIO_MUTUAL uses the mesh certificates; it takes no certificate files or credentialName');
    }
    if (tls.credentialName !== undefined && files) c.report(tp, 'set certificate files or credentialName, not both');
    if (
      tls.mode === 'MUTUAL' &&
      tls.credentialName === undefined &&
      (tls.clientCertificate === undefined || tls.privateKey === undefined)
    ) {
      c.report(tp, 'MUTUAL needs clientCertificate and privateKey (or credentialName)');
    }
    c.nonEmptyStrings(`${tp}.subjectAltNames`, tls.subjectAltNames);
  }
}

function checkTrafficPolicy(path: string, tp: TrafficPolicy | undefined, c: Checker): void {
  if (!tp) return;
  if (!tp.loadBalancer && !tp.connectionPool && !tp.outlierDetection && !tp.tls && !tp.portLevelSettings) {
    c.report(path, 'trafficPolicy must set at least one field');
  }
  checkPolicy(path, tp, c);
  const ports = new Set<number>();
  tp.portLevelSettings?.forEach((pl, i) => {
    const p = `${path}.portLevelSettings[${i}]`;
    c.port(`${p}.port.number`, pl.port.number);
    if (ports.has(pl.port.number)) c.report(`${p}.port.number`, `port ${pl.port.number} has settings twice`);
    ports.add(pl.port.number);
    if (!pl.loadBalancer && !pl.connectionPool && !pl.outlierDetection && !pl.tls) c.report(p, 'port settings must set at least one field');
    checkPolicy(p, pl, c);
  });
}

export function checkDestinationRule(spec: DestinationRuleSpec, c: Checker): void {
  c.host('spec.host', spec.host, { wildcard: true, short: true });
  checkTrafficPolicy('spec.trafficPolicy', spec.trafficPolicy, c);
  const names = new Set<string>();
  spec.subsets?.forEach((s, i) => {
    const p = `spec.subsets[${i}]`;
    if (!isDns1123Label(s.name)) c.report(`${p}.name`, `subset name ${quote(s.name)} is not a DNS-1123 label`);
    if (names.has(s.name)) c.report(`${p}.name`, `subset ${quote(s.name)} is defined twice`);
    names.add(s.name);
    c.labels(`${p}.labels`, s.labels);
    checkTrafficPolicy(`${p}.trafficPolicy`, s.trafficPolicy, c);
  });
  c.exportTo('spec.exportTo', spec.exportTo, false);
}
