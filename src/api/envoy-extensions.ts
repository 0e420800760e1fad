/**
 * Envoy HTTP filters that call a service vmesh's proxy has no client for (ext_proc, ext_authz, ratelimit), as
 * an EnvoyFilter may add them. Their protos are loaded, so such a patch validates; the EnvoyFilter validator
 * warns about them and the proxy's compiler runs them as Envoy runs them when their service cannot be reached.
 * Any other extension vmesh has no proto for is refused by the validator, by name.
 */

const URL = 'type.googleapis.com/';

/** What a filter that calls an external service does when the call cannot be made, as Envoy configures it. */
export interface ExternalFilter {
  /** The service it would call, for messages. */
  readonly service: string;
  /** The config field deciding what happens on failure: `failure_mode_allow` lets requests through, `failure_mode_deny` stops them. */
  readonly modeField: 'failure_mode_allow' | 'failure_mode_deny';
  /** Envoy's answer when the failure closes: the status (ext_authz: status_on_error, else fixed). */
  readonly status: number;
  /** Envoy's response flag for the failure, if it sets one. */
  readonly flag?: 'UAEX' | 'RLSE';
}

export const EXTERNAL_HTTP_FILTERS: ReadonlyMap<string, ExternalFilter> = new Map([
  [
    `${URL}envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor`,
    { service: 'an external processor (ext_proc)', modeField: 'failure_mode_allow', status: 500 },
  ],
  [
    `${URL}envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`,
    { service: 'an external authorization service (ext_authz)', modeField: 'failure_mode_allow', status: 403, flag: 'UAEX' },
  ],
  [
    `${URL}envoy.extensions.filters.http.ratelimit.v3.RateLimit`,
    // Unset failure_mode_deny: requests pass when the service fails.
    { service: 'a rate limit service', modeField: 'failure_mode_deny', status: 500, flag: 'RLSE' },
  ],
]);

/** Whether an external filter's config lets requests through when its service cannot be reached. */
export function externalFailsOpen(f: ExternalFilter, cfg: Readonly<Record<string, unknown>>): boolean {
  const set = cfg[f.modeField] === true;
  return f.modeField === 'failure_mode_deny' ? !set : set;
}
