import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import Consul from 'consul';
import { ErrorCode, VmeshError, vmeshError } from '../lib/errors.js';

/** One read of a blocking endpoint: the decoded body and Consul's query metadata headers. */
export interface ConsulQueryResult {
  readonly body: unknown;
  /** X-Consul-Index; 0 when missing or unparsable. */
  readonly index: number;
  readonly knownLeader: boolean;
  readonly lastContactMs: number;
}

export interface BlockingQuery {
  /** 0 asks for the current state at once; otherwise the request waits for an index above this one. */
  readonly index: number;
  readonly waitSeconds: number;
  readonly signal: AbortSignal;
}

export interface ConsulHttpOptions {
  readonly url: string;
  readonly token?: string;
  readonly datacenter?: string;
}

// The package types leave out the per-call options every method accepts (index, wait, ctx, timeout).
interface CallOptions {
  token?: string;
  dc?: string;
  index?: string;
  wait?: string;
  timeout?: number;
  ctx: EventEmitter & { includeResponse: true };
}
type Reply = [IncomingMessage, unknown];

/**
 * The two Consul reads discovery needs, through the `consul` package, with cancellation (papi's `ctx`
 * emitter, fed from an AbortSignal) and the response headers (papi's `includeResponse`) that blocking needs.
 */
export class ConsulHttp {
  readonly url: string;
  private readonly consul: Consul;

  constructor(private readonly opts: ConsulHttpOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw vmeshError(ErrorCode.InvalidConfig, `consul.url ${JSON.stringify(opts.url)} is not a URL, want e.g. http://127.0.0.1:8500`);
    }
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || (u.pathname !== '/' && u.pathname !== '') || u.search !== '') {
      throw vmeshError(ErrorCode.InvalidConfig, `consul.url ${JSON.stringify(opts.url)}: want http(s)://host:port with no path or query`);
    }
    const secure = u.protocol === 'https:';
    this.url = `${u.protocol}//${u.host}`;
    this.consul = new Consul({ host: u.hostname, port: u.port === '' ? (secure ? 443 : 80) : Number(u.port), secure });
  }

  catalogServices(q: BlockingQuery): Promise<ConsulQueryResult> {
    return this.call('/v1/catalog/services', q, (o) => this.consul.catalog.services(o as object));
  }

  healthService(service: string, q: BlockingQuery): Promise<ConsulQueryResult> {
    // No `passing` filter: unhealthy instances are reported too, flagged, so callers see the whole service.
    return this.call(`/v1/health/service/${service}`, q, (o) => this.consul.health.service({ ...o, service } as { service: string }));
  }

  /** Closes the keep-alive sockets. */
  destroy(): void {
    this.consul.destroy();
  }

  private async call(path: string, q: BlockingQuery, run: (o: CallOptions) => Promise<unknown>): Promise<ConsulQueryResult> {
    if (q.signal.aborted) throw abortError(path);
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true as const });
    const o: CallOptions = { ctx };
    if (this.opts.token) o.token = this.opts.token;
    if (this.opts.datacenter) o.dc = this.opts.datacenter;
    let waitMs = 0;
    if (q.index > 0) {
      o.index = String(q.index);
      o.wait = `${q.waitSeconds}s`;
      waitMs = q.waitSeconds * 1000;
    }
    // Consul may hold a request for wait + wait/16 (its jitter); past that plus slack, the connection is dead.
    o.timeout = Math.ceil(waitMs + waitMs / 16) + 10_000;
    const cancel = () => ctx.emit('cancel');
    q.signal.addEventListener('abort', cancel, { once: true });
    try {
      const [res, body] = (await run(o)) as Reply;
      return {
        body,
        index: headerInt(res.headers['x-consul-index']),
        knownLeader: res.headers['x-consul-knownleader'] === 'true',
        lastContactMs: headerInt(res.headers['x-consul-lastcontact']),
      };
    } catch (e) {
      if (q.signal.aborted) throw abortError(path);
      throw this.wrap(path, e);
    } finally {
      q.signal.removeEventListener('abort', cancel);
    }
  }

  private wrap(path: string, e: unknown): VmeshError {
    const status = (e as { response?: { statusCode?: unknown } }).response?.statusCode;
    const code = (e as { code?: unknown }).code;
    let msg = e instanceof Error ? e.message.replace(/^consul: [\w.]+: /, '') : String(e);
    if (status === 403) msg += ' (check the Consul ACL token: it needs service:read and node:read)';
    const details: Record<string, unknown> = { url: this.url, path };
    if (typeof status === 'number') details.status = status;
    if (typeof code === 'string') details.code = code;
    const where = typeof status === 'number' ? `HTTP ${status}` : typeof code === 'string' ? code : 'failed';
    return new VmeshError(ErrorCode.ConsulUnavailable, `consul ${this.url}: GET ${path}: ${where}: ${msg}`, details, { cause: e });
  }
}

function abortError(path: string): VmeshError {
  return vmeshError(ErrorCode.ConsulUnavailable, `consul: GET ${path} aborted`, { aborted: true });
}

function headerInt(v: string | string[] | undefined): number {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || !/^\d+$/.test(s)) return 0;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : 0;
}
