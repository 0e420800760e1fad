// The demo's mesh: bookinfo's four services (reviews in three versions) and a client, each a workload with its own
// uid and service account (so its own SPIFFE id: the identities show which version answered), spread so that every
// call crosses from one lab host to another:
//   client (h2) → productpage (h3) → details (h2)
//                                  → reviews v1|v2|v3 (h4) → ratings (h2), from v2 and v3 only
import { join } from 'node:path';

export type AgentHost = 'h2' | 'h3' | 'h4';
export const AGENT_HOSTS: readonly AgentHost[] = ['h2', 'h3', 'h4'];

export interface Workload {
  readonly name: string;
  readonly service: string;
  readonly serviceAccount: string;
  /** The uid it runs as: connections it opens present its service account's SPIFFE id. */
  readonly uid: number;
  readonly host: AgentHost;
  /** The port it listens on; the first workload of a service also gives the service's port. */
  readonly port: number;
  readonly version?: string;
  /** The app it runs (demo/apps/), with its environment; none for the client, which runs only the traffic. */
  readonly app?: { readonly file: string; readonly env: Readonly<Record<string, string>> };
}

const APPS = join(import.meta.dirname, 'apps');
export const TRAFFIC_APP = join(APPS, 'traffic.mjs');
export const PRODUCTPAGE_URL = 'http://productpage:9080/';

const app = (file: string, env: Record<string, string> = {}) => ({ file: join(APPS, file), env });
const RATINGS = { RATINGS_URL: 'http://ratings:9085/' };

export const CLIENT: Workload = { name: 'client', service: 'client', serviceAccount: 'client', uid: 1601, host: 'h2', port: 9999 };

export const WORKLOADS: readonly Workload[] = [
  CLIENT,
  {
    name: 'productpage',
    service: 'productpage',
    serviceAccount: 'bookinfo-productpage',
    uid: 1602,
    host: 'h3',
    port: 9080,
    app: app('productpage.mjs', { DETAILS_URL: 'http://details:9081/', REVIEWS_URL: 'http://reviews:9082/' }),
  },
  { name: 'details', service: 'details', serviceAccount: 'bookinfo-details', uid: 1603, host: 'h2', port: 9081, app: app('details.mjs') },
  {
    name: 'reviews-v1',
    service: 'reviews',
    serviceAccount: 'bookinfo-reviews-v1',
    uid: 1604,
    host: 'h4',
    port: 9082,
    version: 'v1',
    app: app('reviews.mjs', { VERSION: 'v1' }),
  },
  {
    name: 'reviews-v2',
    service: 'reviews',
    serviceAccount: 'bookinfo-reviews-v2',
    uid: 1605,
    host: 'h4',
    port: 9083,
    version: 'v2',
    app: app('reviews.mjs', { VERSION: 'v2', ...RATINGS }),
  },
  {
    name: 'reviews-v3',
    service: 'reviews',
    serviceAccount: 'bookinfo-reviews-v3',
    uid: 1606,
    host: 'h4',
    port: 9084,
    version: 'v3',
    app: app('reviews.mjs', { VERSION: 'v3', ...RATINGS }),
  },
  { name: 'ratings', service: 'ratings', serviceAccount: 'bookinfo-ratings', uid: 1607, host: 'h2', port: 9085, app: app('ratings.mjs') },
];

/** `vmesh workload register` arguments for a workload at `address`. */
export function registerArgs(w: Workload, address: string): string[] {
  return [
    'workload',
    'register',
    '--name',
    w.name,
    '--service',
    w.service,
    '--service-account',
    w.serviceAccount,
    '--uid',
    String(w.uid),
    '--host',
    w.host,
    '--address',
    address,
    '--port',
    `http:${w.port}`,
    ...(w.version ? ['--label', `version=${w.version}`] : []),
    // Registered before the agents start: nothing could present the identity yet.
    '--no-wait',
  ];
}

/** Registration in two waves: the first workload of each service creates its ServiceEntry (and port), so it goes alone. */
export function registrationWaves(): Workload[][] {
  const seen = new Set<string>();
  const first: Workload[] = [];
  const rest: Workload[] = [];
  for (const w of WORKLOADS) {
    (seen.has(w.service) ? rest : first).push(w);
    seen.add(w.service);
  }
  return [first, rest];
}
