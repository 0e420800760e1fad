import { request } from 'node:https';
import { stringify } from 'node:querystring';
import { ErrorCode, VmeshError, vmeshError } from './errors.js';

export interface ApiClientOptions {
  /** `https://host:15014` */
  readonly url: string;
  readonly token?: string;
  /** The controller's CA certificate (PEM): the API's certificate must chain to it. */
  readonly caPem?: string;
  readonly timeoutMs?: number;
}

/** The CLI's side of the controller's HTTPS API; errors come back as the server's VmeshError. */
export class ApiClient {
  constructor(private readonly opts: ApiClientOptions) {}

  async call<T>(method: string, path: string, body?: unknown, query?: Record<string, string>): Promise<T> {
    const url = new URL(path + (query && Object.keys(query).length > 0 ? `?${stringify(query)}` : ''), this.opts.url);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    if (payload !== undefined) {
      headers['content-type'] = typeof body === 'string' ? 'application/yaml' : 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise<T>((resolve, reject) => {
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
            } else resolve(doc as T);
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
