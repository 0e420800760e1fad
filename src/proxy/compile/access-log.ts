import type { AccessLog__Output } from '../../generated/envoy/config/accesslog/v3/AccessLog.js';
import type { Decoded } from '../../xds/envoy-types.js';
import { TypedConfigUrl } from '../../xds/type-urls.js';
import type { AccessLogConfig } from '../proxy-config.js';
import { enumName, fail, list, msg, num, part, str, typeUrlOf } from './read.js';

/**
 * `access_log` entries of an HCM or tcp_proxy: Envoy's stdout logger (what the translator emits for Istio's `envoy`
 * provider), optionally behind a status_code_filter. The proxy writes every entry as a JSON line with Envoy's default
 * fields, whatever the text/JSON format says (the JSON format the translator sends names the same fields).
 */
export function compileAccessLogs(v: readonly Decoded<AccessLog__Output>[] | null | undefined, path: string): AccessLogConfig[] {
  return list(v, path).map((x, i) => {
    const p = `${path}[${i}]`;
    const entry = part(x, p);
    const url = typeUrlOf(msg(entry.typed_config, `${p}.typed_config`));
    if (url !== TypedConfigUrl.stdoutAccessLog)
      fail(`${p}.typed_config`, `access logger ${url || str(entry.name, `${p}.name`)} is not supported (stdout only)`);
    const filter = msg(entry.filter, `${p}.filter`);
    if (!filter) return {};
    const sc = msg(filter.status_code_filter, `${p}.filter.status_code_filter`);
    // protobufjs names the set oneof member in `filter_specifier`.
    const others = Object.entries(filter)
      .filter(([k, x]) => k !== 'status_code_filter' && k !== 'filter_specifier' && x !== null && x !== undefined)
      .map(([k]) => k);
    if (!sc || others.length > 0)
      fail(`${p}.filter`, `only status_code_filter is supported${others.length ? ` (got ${others.join(', ')})` : ''}`);
    const cmp = part(sc.comparison, `${p}.filter.status_code_filter.comparison`);
    const op = enumName(cmp.op, `${p}.filter.status_code_filter.comparison.op`, ['EQ', 'GE', 'LE']);
    if (op !== 'EQ' && op !== 'GE' && op !== 'LE') fail(`${p}.filter.status_code_filter.comparison.op`, `${op} is not supported`);
    const value = num(msg(cmp.value, `${p}.filter.status_code_filter.comparison.value`)?.default_value, `${p}.filter...default_value`);
    return { statusFilter: { op, value } };
  });
}

/** Whether an entry logs a request or connection that ended with `status` (0 for TCP and aborted streams). */
export function accessLogWants(entry: AccessLogConfig, status: number): boolean {
  const f = entry.statusFilter;
  if (!f) return true;
  return f.op === 'EQ' ? status === f.value : f.op === 'GE' ? status >= f.value : status <= f.value;
}
