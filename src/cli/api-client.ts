import { request } from 'node:https';
import { stringify } from 'node:querystring';
import type { z } from 'zod';
import { ErrorCode, VmeshError, vmeshError } from '../lib/errors.js';

export interface ApiClientOptions {
  /** `https://host:15014` */
  readonly url: string;
  readonly token?: string;
  /** The controller's CA certificate (PEM): the API's certificate must chain to it. */
  readonly caPem?: string;
  readonly timeoutMs?: number;
}

/** `[0].facts.os`: where in a JSON document a schema issue is. */
function fieldPath(path: readonly PropertyKey[]): string {
  const p = path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('');
  return p === '' ? '(the whole body)' : p.replace(/^\./, '');
}

/**
 * The answer as its schema (src/api/http/) types it, or VMESH_ERR_BAD_RESPONSE naming the first field that does
 * not match: a controller of another version (or something else on its port) must not be printed as if it agreed.
 */
export function checkResponse<S extends z.ZodType>(schema: S, doc: unknown, what: string): z.output<S> {
  const r = schema.safeParse(doc);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = fieldPath(issue?.path ?? []);
  throw vmeshError(
    ErrorCode.BadResponse,
    `${what}: the controller's answer does not match the API: ${where}: ${issue?.message ?? 'invalid'}`,
    {
      field: where,
    },
  );
}

/** The CLI's side of the controller's HTTPS API; errors come back as the server's VmeshError, answers checked against their schema. */
export class ApiClient {
  constructor(private readonly opts: ApiClientOptions) {}

  async call<S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    body?: unknown,
    query?: Record<string, string>,
  ): Promise<z.output<S>> {
    return checkResponse(schema, await this.request(method, path, body, query), `${method} ${path}`);
  }

  /** The answer as JSON, unchecked; `call` is what commands use. */
  private request(method: string, path: string, body?: unknown, query?: Record<string, string>): Promise<unknown> {
    const url = new URL(path + (query && Object.keys(query).length > 0 ? `?${stringify(query)}` : ''), this.opts.url);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (payload !== undefined) {
      headers['content-type'] = typeof body === 'string' ? 'application/yaml' : 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise<unknown>((resolve, reject) => {
      const req = request(
        url,
        { method, headers, ...(this.opts.caPem ? { ca: this.opts.caPem } : {}), timeout: this.opts.timeoutMs ?? 15_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let doc: unknown;
            try {
              doc = text === '' ? undefined : JSON.parse(text);
            } catch {
              reject(vmeshError(ErrorCode.Internal, `controller answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`));
              return;
            }
            const e = (doc as { error?: { code?: ErrorCode; message?: string; details?: Record<string, unknown> } })?.error;
            if ((res.statusCode ?? 500) >= 400 || e) {
              reject(new VmeshError(e?.code ?? ErrorCode.Internal, e?.message ?? `HTTP ${res.statusCode}`, e?.details ?? {}));
            } else resolve(doc);
          });
        },
      );
      req.on('timeout', () => req.destroy(vmeshError(ErrorCode.Unavailable, `controller at ${this.opts.url} did not answer in time`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof VmeshError) reject(e);
        else reject(vmeshError(ErrorCode.Unavailable, `cannot reach the controller at ${this.opts.url}: ${e.code ?? e.message}`));
      });
      req.end(payload);
    });
  }
}
