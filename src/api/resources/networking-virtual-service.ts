import { z } from 'zod';
import {
  bool,
  type DeepReadonly,
  duration,
  int,
  notImplemented,
  oneOf,
  percent,
  portSelector,
  presenceMatch,
  str,
  stringMap,
  stringMatch,
  strings,
  uint,
} from './schema-helpers.js';

/** VirtualService: Istio's routing rules for a set of hosts (schema; the checks are in networking-virtual-service-check.ts). */

const headerOperations = z.strictObject({ set: stringMap.optional(), add: stringMap.optional(), remove: strings.optional() });
export const headers = z.strictObject({ request: headerOperations.optional(), response: headerOperations.optional() });

export const destination = z.strictObject({ host: str, subset: str.optional(), port: portSelector.optional() });

const presenceMatches = z.record(z.string(), presenceMatch);

const httpMatch = z.strictObject({
  name: str.optional(),
  uri: stringMatch.optional(),
  scheme: stringMatch.optional(),
  method: stringMatch.optional(),
  authority: stringMatch.optional(),
  headers: presenceMatches.optional(),
  port: int.optional(),
  sourceLabels: stringMap.optional(),
  gateways: strings.optional(),
  queryParams: presenceMatches.optional(),
  ignoreUriCase: bool.optional(),
  withoutHeaders: presenceMatches.optional(),
  sourceNamespace: str.optional(),
  statPrefix: notImplemented(),
});

const httpRouteDestination = z.strictObject({ destination, weight: int.optional(), headers: headers.optional() });

const redirect = z.strictObject({
  uri: str.optional(),
  authority: str.optional(),
  port: int.optional(),
  derivePort: z.enum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']).optional(),
  scheme: str.optional(),
  redirectCode: int.optional(),
});

const directResponse = z.strictObject({
  status: int,
  body: z
    .strictObject({ string: str.optional(), bytes: str.optional() })
    .superRefine(oneOf(['string', 'bytes'], { required: true }))
    .optional(),
});

const rewrite = z.strictObject({
  uri: str.optional(),
  authority: str.optional(),
  uriRegexRewrite: z.strictObject({ match: str, rewrite: str }).optional(),
});

const retries = z.strictObject({
  attempts: uint.optional(),
  perTryTimeout: duration().optional(),
  retryOn: str.optional(),
  retryRemoteLocalities: bool.optional(),
  retryIgnorePreviousHosts: notImplemented(),
  backoff: notImplemented(),
});

const fault = z.strictObject({
  delay: z
    .strictObject({
      fixedDelay: duration(),
      percentage: percent.optional(),
      percent: notImplemented('use percentage: {value: N}'),
      exponentialDelay: notImplemented(),
    })
    .optional(),
  abort: z
    .strictObject({
      httpStatus: int.optional(),
      grpcStatus: str.optional(),
      http2Error: notImplemented('use httpStatus or grpcStatus'),
      percentage: percent.optional(),
    })
    // Istio accepts an abort without an error type (warning): it then aborts nothing.
    .superRefine(oneOf(['httpStatus', 'grpcStatus'], { required: false }))
    .optional(),
});

const corsPolicy = z.strictObject({
  allowOrigins: z.array(stringMatch).optional(),
  /** Deprecated in Istio: exact origins, used when allowOrigins is not set. */
  allowOrigin: strings.optional(),
  allowMethods: strings.optional(),
  allowHeaders: strings.optional(),
  exposeHeaders: strings.optional(),
  maxAge: duration().optional(),
  allowCredentials: bool.optional(),
  /** FORWARD (the default): a preflight from an origin not allowed goes upstream; IGNORE: the proxy answers it. */
  unmatchedPreflights: z.enum(['UNSPECIFIED', 'FORWARD', 'IGNORE']).optional(),
});

const httpRoute = z.strictObject({
  name: str.optional(),
  match: z.array(httpMatch).optional(),
  route: z.array(httpRouteDestination).optional(),
  redirect: redirect.optional(),
  directResponse: directResponse.optional(),
  delegate: notImplemented('write the routes in this VirtualService'),
  rewrite: rewrite.optional(),
  timeout: duration({ allowZero: true }).optional(),
  retries: retries.optional(),
  fault: fault.optional(),
  mirror: destination.optional(),
  mirrorPercentage: percent.optional(),
  mirrorPercent: notImplemented('use mirrorPercentage: {value: N}'),
  mirrors: notImplemented('use mirror and mirrorPercentage'),
  corsPolicy: corsPolicy.optional(),
  headers: headers.optional(),
});

const routeDestination = z.strictObject({ destination, weight: int.optional() });

const l4Match = z.strictObject({
  destinationSubnets: strings.optional(),
  port: int.optional(),
  sourceLabels: stringMap.optional(),
  gateways: strings.optional(),
  sourceNamespace: str.optional(),
  sourceSubnet: notImplemented(),
});

const tlsMatch = z.strictObject({
  sniHosts: strings,
  destinationSubnets: strings.optional(),
  port: int.optional(),
  sourceLabels: stringMap.optional(),
  gateways: strings.optional(),
  sourceNamespace: str.optional(),
});

export const virtualServiceSpec = z.strictObject({
  hosts: strings,
  gateways: strings.optional(),
  http: z.array(httpRoute).optional(),
  tls: z.array(z.strictObject({ match: z.array(tlsMatch), route: z.array(routeDestination) })).optional(),
  tcp: z.array(z.strictObject({ match: z.array(l4Match).optional(), route: z.array(routeDestination) })).optional(),
  exportTo: strings.optional(),
});

export type VirtualServiceSpec = DeepReadonly<z.output<typeof virtualServiceSpec>>;
export type HttpRoute = DeepReadonly<z.output<typeof httpRoute>>;
export type Destination = DeepReadonly<z.output<typeof destination>>;
export type Headers = DeepReadonly<z.output<typeof headers>>;
