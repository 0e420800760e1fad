import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import Consul from 'consul';
import { ErrorCode, VmeshError, vmeshError } from '../errors.js';

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

/** One KV entry as Consul returns it, its value decoded from base64 to text (null when empty). */
export interface KvEntry {
  readonly key: string;
  readonly value: string | null;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** One operation of a /v1/txn transaction, in Consul's JSON shape; Value is base64. */
export interface TxnKvOp {
  readonly Verb: 'set' | 'cas' | 'delete' | 'delete-cas' | 'check-index' | 'check-not-exists' | 'get';
  readonly Key: string;
  readonly Value?: string;
  readonly Index?: number;
}

/** Applied (a result per operation that has one: every verb but deletes), or rolled back with Consul's reasons. */
export type TxnOutcome =
  | { readonly ok: true; readonly results: readonly KvEntry[] }
  | { readonly ok: false; readonly errors: ReadonlyArray<{ readonly opIndex: number; readonly what: string }> };

// The package types leave out the per-call options every method accepts (index, wait, ctx, timeout).
interface CallOptions {
  token?: string;
  dc?: string;
  index?: string;
  wait?: string;
  timeout?: number;
  consistent?: boolean;
  ctx: EventEmitter & { includeResponse: true };
}

const TXN_TIMEOUT_MS = 15_000;
type Reply = [IncomingMessage, unknown];

/**
 * The Consul calls vmesh makes, through the `consul` package, with cancellation (papi's `ctx` emitter, fed from
 * an AbortSignal) and the response headers (papi's `includeResponse`) that blocking needs: the catalog reads of
 * discovery, and the KV reads and transactions of the shared controller store.
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

  /**
   * Every entry under `prefix` (`GET /v1/kv/<prefix>?recurse`); `body` is a KvEntry[] (empty when Consul answers
   * 404: nothing under the prefix). `consistent` reads through the leader with a quorum check.
   */
  kvList(prefix: string, q: BlockingQuery & { readonly consistent?: boolean }): Promise<ConsulQueryResult> {
    return this.call(
      `/v1/kv/${prefix}?recurse`,
      q,
      async (o) => {
        const [res, body] = (await this.consul.kv.get({
          ...o,
          key: prefix,
          recurse: true,
          ...(q.consistent ? { consistent: true } : {}),
        } as {
          key: string;
          recurse: true;
        })) as unknown as Reply;
        return [res, parseEntries(body)];
      },
      'key:read on the prefix',
    );
  }

  /** `PUT /v1/txn`: all operations or none. A rollback (409) is an outcome, not an error; anything else throws. */
  async txn(ops: readonly TxnKvOp[], signal?: AbortSignal): Promise<TxnOutcome> {
    const path = '/v1/txn';
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true as const });
    if (signal?.aborted) throw abortError(path);
    const cancel = () => ctx.emit('cancel');
    signal?.addEventListener('abort', cancel, { once: true });
    const o: CallOptions = { ctx, timeout: TXN_TIMEOUT_MS };
    if (this.opts.token) o.token = this.opts.token;
    if (this.opts.datacenter) o.dc = this.opts.datacenter;
    try {
      const [, body] = (await this.consul.transaction.create(ops.map((kv) => ({ KV: kv })) as never, o as never)) as unknown as Reply;
      const results = (body as { Results?: Array<{ KV?: unknown }> | null } | undefined)?.Results ?? [];
      return {
        ok: true,
        results: parseEntries(
          results.map((r) => r.KV),
          true,
        ),
      };
    } catch (e) {
      const res = (e as { response?: { statusCode?: unknown; body?: unknown } }).response;
      if (res?.statusCode === 409) {
        const body = typeof res.body === 'string' ? safeJson(res.body) : res.body;
        const errors = ((body as { Errors?: unknown } | undefined)?.Errors ?? []) as Array<{ OpIndex?: unknown; What?: unknown }>;
        return { ok: false, errors: errors.map((x) => ({ opIndex: Number(x.OpIndex ?? -1), what: String(x.What ?? '') })) };
      }
      if (signal?.aborted) throw abortError(path);
      throw this.wrap(path, e, 'key:write on the prefix', 'PUT');
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  /** Closes the keep-alive sockets. */
  destroy(): void {
    this.consul.destroy();
  }

  private async call(
    path: string,
    q: BlockingQuery,
    run: (o: CallOptions) => Promise<unknown>,
    aclHint = 'service:read and node:read',
  ): Promise<ConsulQueryResult> {
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
      throw this.wrap(path, e, aclHint);
    } finally {
      q.signal.removeEventListener('abort', cancel);
    }
  }

  private wrap(path: string, e: unknown, aclHint: string, method = 'GET'): VmeshError {
    const status = (e as { response?: { statusCode?: unknown } }).response?.statusCode;
    const code = (e as { code?: unknown }).code;
    let msg = e instanceof Error ? e.message.replace(/^consul: [\w.]+: /, '') : String(e);
    if (status === 403) msg += ` (check the Consul ACL token: it needs ${aclHint})`;
    const details: Record<string, unknown> = { url: this.url, path };
    if (typeof status === 'number') details.status = status;
    if (typeof code === 'string') details.code = code;
    const where = typeof status === 'number' ? `HTTP ${status}` : typeof code === 'string' ? code : 'failed';
    return new VmeshError(ErrorCode.ConsulUnavailable, `consul ${this.url}: ${method} ${path}: ${where}: ${msg}`, details, { cause: e });
  }
}

function abortError(path: string): VmeshError {
  return vmeshError(ErrorCode.ConsulUnavailable, `consul: ${path} aborted`, { aborted: true });
}

function headerInt(v: string | string[] | undefined): number {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined || !/^\d+$/.test(s)) return 0;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : 0;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** KV entries from a body; the `consul` package decodes KV reads' values itself, a transaction's are still base64. */
function parseEntries(body: unknown, base64 = false): KvEntry[] {
  if (!Array.isArray(body)) return [];
  return body.flatMap((x: unknown) => {
    const e = x as { Key?: unknown; Value?: unknown; CreateIndex?: unknown; ModifyIndex?: unknown } | null;
    if (!e || typeof e.Key !== 'string') return [];
    return [
      {
        key: e.Key,
        value: typeof e.Value !== 'string' ? null : base64 ? Buffer.from(e.Value, 'base64').toString('utf8') : e.Value,
        createIndex: Number(e.CreateIndex ?? 0),
        modifyIndex: Number(e.ModifyIndex ?? 0),
      },
    ];
  });
}
