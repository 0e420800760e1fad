import type { AccessLog } from '../../generated/envoy/config/accesslog/v3/AccessLog.js';
import type { AccessLogFilter } from '../../generated/envoy/config/accesslog/v3/AccessLogFilter.js';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import { toStruct } from '../struct.js';
import type { TranslateInput } from './input.js';
import { type TelemetryScope, telemetryChain, telemetryLabel } from './telemetry-scope.js';
import { typedConfig } from './typed-config.js';

export type { TelemetryScope as AccessLogScope } from './telemetry-scope.js';

/**
 * Access logging from Telemetry resources and the mesh default (Istio's accessLogFile/accessLogEncoding):
 * `access_log` entries for HttpConnectionManagers and tcp_proxy filters.
 */

/** Istio's built-in provider: Envoy's own logger writing to the proxy's stdout. The only one vmesh has. */
const ENVOY_PROVIDER = 'envoy';

/**
 * Envoy's default access log format as JSON fields (the same operators as its default text line), used when the
 * mesh asks for JSON.
 */
const DEFAULT_JSON_FORMAT: Readonly<Record<string, string>> = {
  start_time: '%START_TIME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
};

/** CEL filters vmesh can express with Envoy's built-in filters: `response.code <op> N`. */
function statusFilter(expression: string, where: string): AccessLogFilter {
  const m = /^\s*response\.code\s*(>=|>|<=|<|==)\s*(\d+)\s*$/.exec(expression);
  if (!m?.[1] || !m[2]) {
    throw vmeshError(
      ErrorCode.UnsupportedField,
      `${where}: filter expression ${JSON.stringify(expression)} is not implemented by vmesh (only "response.code <op> N")`,
    );
  }
  const n = Number(m[2]);
  const [op, value] = { '>=': ['GE', n], '>': ['GE', n + 1], '<=': ['LE', n], '<': ['LE', n - 1], '==': ['EQ', n] }[m[1]] as [
    'GE' | 'LE' | 'EQ',
    number,
  ];
  return {
    status_code_filter: { comparison: { op, value: { default_value: Math.max(0, value), runtime_key: 'vmesh.access_log.status' } } },
  };
}

interface ProviderState {
  readonly enabled: boolean;
  readonly filter?: AccessLogFilter;
}

/**
 * The enabled providers after applying each level's accessLogging entries for this mode, as Istio merges them:
 * an entry naming providers sets them; one naming none applies to the providers already in effect.
 */
function providersFor(input: TranslateInput, scope: TelemetryScope): Map<string, ProviderState> {
  const state = new Map<string, ProviderState>();
  if (input.mesh.defaultAccessLog.enabled) state.set(ENVOY_PROVIDER, { enabled: true });
  for (const t of telemetryChain(input, scope, 'accessLogging')) {
    t.spec.accessLogging?.forEach((entry, i) => {
      const mode = entry.match?.mode ?? 'CLIENT_AND_SERVER';
      if (mode !== 'CLIENT_AND_SERVER' && mode !== scope.mode) return;
      const where = `${telemetryLabel(t)}: spec.accessLogging[${i}]`;
      // CEL's constants: `true` filters nothing out, `false` everything.
      const expr = entry.filter?.expression.trim();
      const filter = expr && expr !== 'true' && expr !== 'false' ? statusFilter(expr, `${where}.filter.expression`) : undefined;
      const names = entry.providers?.map((p) => p.name) ?? (state.size > 0 ? [...state.keys()] : [ENVOY_PROVIDER]);
      // Naming providers replaces the ones in effect; one vmesh does not have logs nothing, as an undefined
      // one does in Istio (validation warned).
      if (entry.providers) for (const name of [...state.keys()]) if (!names.includes(name)) state.delete(name);
      for (const name of names) {
        if (name === ENVOY_PROVIDER)
          state.set(name, { enabled: entry.disabled !== true && expr !== 'false', ...(filter ? { filter } : {}) });
      }
    });
  }
  return state;
}

/** `access_log` entries for a filter serving `scope`; empty when logging is off. */
export function accessLogsFor(input: TranslateInput, scope: TelemetryScope): AccessLog[] {
  const envoy = providersFor(input, scope).get(ENVOY_PROVIDER);
  if (!envoy?.enabled) return [];
  const json = input.mesh.defaultAccessLog.encoding === 'JSON';
  return [
    {
      name: 'envoy.access_loggers.stdout',
      ...(envoy.filter ? { filter: envoy.filter } : {}),
      // Without log_format Envoy writes its default text line, which is what TEXT asks for.
      typed_config: typedConfig('stdoutAccessLog', json ? { log_format: { json_format: toStruct(DEFAULT_JSON_FORMAT) } } : {}),
    },
  ];
}
