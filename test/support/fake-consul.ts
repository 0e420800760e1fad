/**
 * A small in-process stand-in for Consul's HTTP API, written from Consul's documented semantics so the
 * discovery code is exercised against real HTTP, real long polls and real index behaviour:
 *
 * - `GET /v1/catalog/services`: service name -> union of tags; X-Consul-Index is the services table index,
 *   which moves on service registration changes only (health changes do not touch it).
 * - `GET /v1/health/service/:name`: one entry per instance with Node, Service and Checks (the node's
 *   serfHealth plus the instance's own check); `?passing` keeps entries whose checks are all passing, `?tag`
 *   keeps entries carrying every given tag. X-Consul-Index is the service's own modify index.
 * - Blocking: with `?index=N` the request waits until the relevant index exceeds N or `wait` (default 5m,
 *   capped at 10m, plus up to wait/16 jitter) elapses, then answers with the current result either way.
 *   A snapshot restore (`resetIndex`) wakes every blocked query at once with the new, lower index.
 * - Idempotent writes do not move indexes, as in Consul; `touch` forces a write that changes nothing, to
 *   produce the "woke up but nothing changed" responses the docs warn about.
 * - KV (`GET/PUT/DELETE /v1/kv/:key` with recurse, keys, raw, cas, flags; blocking reads) and `PUT /v1/txn`: see
 *   fake-consul-kv.ts. KV writes move the raft index (waking blocked queries) but no catalog index.
 * - ACLs: when created with `token`, a request without that token gets 403 `ACL not found`.
 * Listens on 127.0.0.1, port 0 unless told. `pause` closes the listener and drops every connection (Consul down);
 * `resume` listens again on the same port.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { entryJson, FakeKv, KvHttpError, MAX_VALUE_BYTES } from './fake-consul-kv.js';

export type FakeCheckStatus = 'passing' | 'warning' | 'critical';

export interface FakeInstance {
  readonly node: string;
  /** The node's address. */
  readonly address: string;
  readonly service: string;
  /** Defaults to the service name, as Consul does. */
  readonly id?: string;
  readonly port: number;
  readonly tags?: readonly string[];
  readonly meta?: Readonly<Record<string, string>>;
  readonly status?: FakeCheckStatus;
  /** Service.Address; empty (the default) means "use the node's address". */
  readonly serviceAddress?: string;
}

export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly token?: string;
  readonly at: number;
}

export interface FakeConsulOptions {
  /** When set, every request must present this ACL token. */
  readonly token?: string;
  readonly datacenter?: string;
  /** Consul's wait/16 wake-up jitter; on by default. */
  readonly jitter?: boolean;
  /** Consul registers itself as service `consul`; on by default. */
  readonly consulService?: boolean;
  /** Where to listen: 127.0.0.1 and a free port by default (a lab host's address for tests across namespaces). */
  readonly host?: string;
  readonly port?: number;
}

export interface FakeConsul {
  readonly url: string;
  readonly port: number;
  readonly requests: FakeRequest[];
  registerService(inst: FakeInstance): void;
  /** Removes every instance with this service ID (on any node). */
  deregister(serviceId: string): void;
  setHealth(serviceId: string, status: FakeCheckStatus): void;
  setNodeHealth(node: string, status: FakeCheckStatus): void;
  /** A write that changes nothing visible but moves the service's index (and wakes its watchers). */
  touch(service: string): void;
  /** Simulates a restart / snapshot restore: every index drops to `to` (default 1), data unchanged. */
  resetIndex(to?: number): void;
  /** The current raft index. */
  index(): number;
  /** A KV value as text, as an operator's `consul kv get` would show it. */
  kvGet(key: string): string | undefined;
  /** Writes a KV value directly (an operator's `consul kv put`), moving the indexes like any write. */
  kvPut(key: string, value: string): void;
  kvDelete(key: string): void;
  /** Keys under a prefix, sorted. */
  kvKeys(prefix: string): string[];
  /** Runs `hook` once, before the next /v1/txn is applied: lets a test interleave another writer. */
  interceptTxn(hook: () => Promise<void> | void): void;
  /** A blocked query woken by a change answers `ms` later (a lagging watcher); plain reads stay immediate. */
  setWatchDelay(ms: number): void;
  /** Blocking queries currently parked. */
  blocked(): number;
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

interface NodeRec {
  id: string;
  name: string;
  address: string;
  serf: FakeCheckStatus;
  createIndex: number;
  modifyIndex: number;
}

interface InstRec {
  node: string;
  id: string;
  service: string;
  serviceAddress: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
  status: FakeCheckStatus;
  createIndex: number;
  modifyIndex: number;
  checkModifyIndex: number;
}

const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;
const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration for the non-negative values a `wait` parameter carries ("5s", "1m30s", "250ms"). */
function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * (GO_UNITS[m[2] ?? ''] ?? Number.NaN);
    pos = re.lastIndex;
  }
  return pos === text.length && pos > 0 && Number.isFinite(total) ? total : undefined;
}

/** Go's strconv.ParseBool, which Consul applies to flag parameters that carry a value. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

interface Computed {
  readonly index: number;
  readonly body: unknown;
  readonly status?: number;
  readonly raw?: Buffer;
}

/** Consul bounds a request body (txn_max_req_len, kv_max_value_size: 512 KiB by default) and answers 413 past it. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new HttpError(413, `Request body too large, max size: ${max} bytes`));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

class FakeConsulServer implements FakeConsul {
  readonly requests: FakeRequest[] = [];
  port = 0;
  private raft = 10;
  private servicesIndex = 1;
  private readonly serviceIndex = new Map<string, number>();
  private readonly nodes = new Map<string, NodeRec>();
  private readonly insts = new Map<string, InstRec>();
  private readonly waiters = new Set<() => void>();
  private restoreGen = 0;
  private parked = 0;
  private server: Server | undefined;
  private readonly kv = new FakeKv({ peek: () => this.raft + 1, commit: () => this.bump() });
  private txnHook: (() => Promise<void> | void) | undefined;
  private watchDelayMs = 0;

  constructor(private readonly opts: FakeConsulOptions) {
    if (opts.consulService !== false) {
      this.registerService({ node: 'consul-server-1', address: '127.0.0.1', service: 'consul', port: 8300 });
    }
  }

  get url(): string {
    return `http://${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  // ---- state changes ----

  private bump(...services: string[]): number {
    this.raft += 1;
    for (const s of services) this.serviceIndex.set(s, this.raft);
    for (const w of [...this.waiters]) w();
    return this.raft;
  }

  private servicesOnNode(node: string): string[] {
    return [...new Set([...this.insts.values()].filter((i) => i.node === node).map((i) => i.service))];
  }

  registerService(inst: FakeInstance): void {
    const id = inst.id ?? inst.service;
    const key = `${inst.node}/${id}`;
    const old = this.insts.get(key);
    const next = {
      service: inst.service,
      serviceAddress: inst.serviceAddress ?? '',
      port: inst.port,
      tags: [...(inst.tags ?? [])],
      meta: { ...(inst.meta ?? {}) },
      status: inst.status ?? old?.status ?? 'passing',
    };
    const node = this.nodes.get(inst.node);
    const nodeChanged = node !== undefined && node.address !== inst.address;
    const same =
      old !== undefined &&
      node !== undefined &&
      !nodeChanged &&
      JSON.stringify([old.service, old.serviceAddress, old.port, old.tags, old.meta, old.status]) ===
        JSON.stringify([next.service, next.serviceAddress, next.port, next.tags, next.meta, next.status]);
    if (same) return; // Consul skips writes that change nothing: no index moves.
    const affected = new Set([inst.service]);
    if (old) affected.add(old.service);
    if (nodeChanged) for (const s of this.servicesOnNode(inst.node)) affected.add(s);
    const idx = this.bump(...affected);
    this.servicesIndex = idx;
    if (!node) {
      const n = this.nodes.size + 1;
      const id16 = n.toString(16).padStart(12, '0');
      this.nodes.set(inst.node, {
        id: `00000000-0000-4000-8000-${id16}`,
        name: inst.node,
        address: inst.address,
        serf: 'passing',
        createIndex: idx,
        modifyIndex: idx,
      });
    } else if (nodeChanged) {
      node.address = inst.address;
      node.modifyIndex = idx;
    }
    const statusChanged = old?.status !== next.status;
    this.insts.set(key, {
      node: inst.node,
      id,
      ...next,
      createIndex: old?.createIndex ?? idx,
      modifyIndex: idx,
      checkModifyIndex: statusChanged || !old ? idx : old.checkModifyIndex,
    });
  }

  private byId(serviceId: string): InstRec[] {
    return [...this.insts.values()].filter((i) => i.id === serviceId);
  }

  deregister(serviceId: string): void {
    const found = this.byId(serviceId);
    if (found.length === 0) return;
    for (const i of found) this.insts.delete(`${i.node}/${i.id}`);
    this.servicesIndex = this.bump(...new Set(found.map((i) => i.service)));
  }

  setHealth(serviceId: string, status: FakeCheckStatus): void {
    const found = this.byId(serviceId);
    if (found.length === 0) throw new Error(`fake-consul: no service instance with ID ${serviceId}`);
    const changing = found.filter((i) => i.status !== status);
    if (changing.length === 0) return;
    const idx = this.bump(...new Set(changing.map((i) => i.service)));
    for (const i of changing) {
      i.status = status;
      i.checkModifyIndex = idx;
    }
  }

  setNodeHealth(node: string, status: FakeCheckStatus): void {
    const n = this.nodes.get(node);
    if (!n) throw new Error(`fake-consul: no node ${node}`);
    if (n.serf === status) return;
    this.bump(...this.servicesOnNode(node));
    n.serf = status;
  }

  touch(service: string): void {
    this.bump(service);
  }

  resetIndex(to = 1): void {
    const idx = Math.max(1, Math.floor(to));
    this.raft = idx;
    this.servicesIndex = idx;
    for (const s of this.serviceIndex.keys()) this.serviceIndex.set(s, idx);
    for (const n of this.nodes.values()) n.createIndex = n.modifyIndex = Math.min(n.modifyIndex, idx);
    for (const i of this.insts.values()) {
      i.createIndex = Math.min(i.createIndex, idx);
      i.modifyIndex = Math.min(i.modifyIndex, idx);
      i.checkModifyIndex = Math.min(i.checkModifyIndex, idx);
    }
    this.kv.resetIndex(idx);
    // Consul abandons the old state store on restore, which returns every blocked query immediately.
    this.restoreGen += 1;
    for (const w of [...this.waiters]) w();
  }

  index(): number {
    return this.raft;
  }

  blocked(): number {
    return this.parked;
  }

  kvGet(key: string): string | undefined {
    return this.kv.get(key).entry?.value.toString('utf8');
  }

  kvPut(key: string, value: string): void {
    this.kv.put(key, Buffer.from(value), {});
  }

  kvDelete(key: string): void {
    this.kv.delete(key, {});
  }

  kvKeys(prefix: string): string[] {
    return this.kv.list(prefix).entries.map((e) => e.key);
  }

  interceptTxn(hook: () => Promise<void> | void): void {
    this.txnHook = hook;
  }

  setWatchDelay(ms: number): void {
    this.watchDelayMs = ms;
  }

  // ---- queries ----

  private catalogServices(): { index: number; body: unknown } {
    const tags = new Map<string, Set<string>>();
    for (const i of this.insts.values()) {
      const set = tags.get(i.service) ?? new Set<string>();
      for (const t of i.tags) set.add(t);
      tags.set(i.service, set);
    }
    const body: Record<string, string[]> = {};
    for (const name of [...tags.keys()].sort()) body[name] = [...(tags.get(name) ?? [])].sort();
    return { index: this.servicesIndex, body };
  }

  private healthService(name: string, q: URLSearchParams): { index: number; body: unknown } {
    let passingOnly = false;
    if (q.has('passing')) {
      const v = q.get('passing') ?? '';
      const b = v === '' ? true : parseGoBool(v);
      if (b === undefined) throw new HttpError(400, `Failed to parse passing: ${v}`);
      passingOnly = b;
    }
    const wantTags = q.getAll('tag');
    const list = [...this.insts.values()]
      .filter((i) => i.service === name)
      .sort((a, b) => (a.node === b.node ? (a.id < b.id ? -1 : 1) : a.node < b.node ? -1 : 1));
    const exists = list.length > 0;
    const body = list
      .filter((i) => wantTags.every((t) => i.tags.includes(t)))
      .map((i) => this.entry(i))
      .filter((e) => !passingOnly || e.Checks.every((c) => c.Status === 'passing'));
    // A service that does not exist (any more) reports the services table index, as Consul does.
    const index = exists ? (this.serviceIndex.get(name) ?? this.servicesIndex) : this.servicesIndex;
    return { index, body };
  }

  private entry(i: InstRec) {
    const n = this.nodes.get(i.node);
    if (!n) throw new HttpError(500, `fake-consul: instance ${i.id} on unknown node ${i.node}`);
    const check = (id: string, name: string, status: FakeCheckStatus, svc?: InstRec, modify = n.modifyIndex) => ({
      Node: n.name,
      CheckID: id,
      Name: name,
      Status: status,
      Notes: '',
      Output: '',
      ServiceID: svc?.id ?? '',
      ServiceName: svc?.service ?? '',
      ServiceTags: svc ? [...svc.tags] : [],
      Type: svc ? 'ttl' : '',
      Definition: {},
      CreateIndex: n.createIndex,
      ModifyIndex: modify,
    });
    return {
      Node: {
        ID: n.id,
        Node: n.name,
        Address: n.address,
        Datacenter: this.opts.datacenter ?? 'dc1',
        TaggedAddresses: { lan: n.address, wan: n.address },
        Meta: { 'consul-network-segment': '' },
        CreateIndex: n.createIndex,
        ModifyIndex: n.modifyIndex,
      },
      Service: {
        ID: i.id,
        Service: i.service,
        // Go serialises empty slices and maps that were never set as null; clients must cope.
        Tags: i.tags.length > 0 ? [...i.tags] : null,
        Address: i.serviceAddress,
        Meta: Object.keys(i.meta).length > 0 ? { ...i.meta } : null,
        Port: i.port,
        Weights: { Passing: 1, Warning: 1 },
        EnableTagOverride: false,
        CreateIndex: i.createIndex,
        ModifyIndex: i.modifyIndex,
      },
      Checks: [
        check('serfHealth', 'Serf Health Status', n.serf),
        check(`service:${i.id}`, `Service '${i.service}' check`, i.status, i, i.checkModifyIndex),
      ],
    };
  }

  // ---- HTTP ----

  private token(req: IncomingMessage, q: URLSearchParams): string | undefined {
    const h = req.headers['x-consul-token'];
    if (typeof h === 'string' && h !== '') return h;
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '');
    return q.get('token') ?? undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://fake');
    const q = u.searchParams;
    const token = this.token(req, q);
    this.requests.push({
      method: req.method ?? '',
      path: u.pathname,
      query: Object.fromEntries(q.entries()),
      ...(token !== undefined ? { token } : {}),
      at: Date.now(),
    });
    let compute: () => Computed;
    const isKv = u.pathname.startsWith('/v1/kv/');
    if (u.pathname === '/v1/catalog/services') {
      compute = () => this.catalogServices();
    } else if (u.pathname.startsWith('/v1/health/service/') && u.pathname.length > '/v1/health/service/'.length) {
      const name = decodeURIComponent(u.pathname.slice('/v1/health/service/'.length));
      compute = () => this.healthService(name, q);
    } else if (isKv || u.pathname === '/v1/txn') {
      const key = isKv ? decodeURIComponent(u.pathname.slice('/v1/kv/'.length)) : '';
      compute = () => this.kvRead(key, q);
    } else {
      throw new HttpError(404, `Invalid URL path: not a recognized HTTP API endpoint: ${u.pathname}`);
    }
    const write = (isKv && (req.method === 'PUT' || req.method === 'DELETE')) || (u.pathname === '/v1/txn' && req.method === 'PUT');
    if (!write && req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `method ${req.method} not allowed`);
    if (this.opts.token !== undefined && token !== this.opts.token) throw new HttpError(403, 'ACL not found');
    const dc = q.get('dc');
    if (dc && dc !== (this.opts.datacenter ?? 'dc1')) throw new HttpError(500, 'No path to datacenter');
    if (q.has('filter')) throw new HttpError(400, 'fake-consul: filter expressions are not supported');
    if (write) {
      const body = await readBody(req, MAX_VALUE_BYTES);
      const out = isKv
        ? this.kvWrite(req.method ?? '', decodeURIComponent(u.pathname.slice('/v1/kv/'.length)), q, body)
        : await this.txn(body);
      const text = JSON.stringify(out.body);
      res.writeHead(out.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    let minIndex = 0;
    if (q.has('index')) {
      const v = q.get('index') ?? '';
      if (!/^\d+$/.test(v)) throw new HttpError(400, 'Invalid index');
      minIndex = Number(v);
    }
    let waitMs = DEFAULT_WAIT_MS;
    if (q.has('wait')) {
      const w = parseGoDuration(q.get('wait') ?? '');
      if (w === undefined) throw new HttpError(400, 'Invalid wait time');
      waitMs = w;
    }
    waitMs = Math.min(waitMs > 0 ? waitMs : DEFAULT_WAIT_MS, MAX_WAIT_MS);
    if (this.opts.jitter !== false) waitMs += Math.random() * (waitMs / 16);

    let result = compute(); // validates parameters before parking
    if (minIndex > 0 && Math.max(1, result.index) <= minIndex) {
      const gen = this.restoreGen;
      const deadline = Date.now() + waitMs;
      this.parked += 1;
      try {
        while (Math.max(1, result.index) <= minIndex && gen === this.restoreGen && !res.destroyed) {
          const left = deadline - Date.now();
          if (left <= 0) break;
          await this.nextChange(left, res);
          result = compute();
        }
      } finally {
        this.parked -= 1;
      }
      if (this.watchDelayMs > 0 && !res.destroyed) {
        await new Promise((r) => setTimeout(r, this.watchDelayMs));
        result = compute();
      }
      if (res.destroyed) return;
    }
    const body = result.raw ?? (result.body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(result.body)));
    res.writeHead(result.status ?? 200, {
      // A KV miss is a bare 404, as Consul writes it (no JSON body).
      'Content-Type': result.raw || result.body === undefined ? 'text/plain; charset=utf-8' : 'application/json',
      'X-Consul-Index': String(Math.max(1, result.index)),
      'X-Consul-KnownLeader': 'true',
      'X-Consul-LastContact': '0',
      'Content-Length': body.length,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  /** GET /v1/kv/:key: one entry, a prefix (`recurse`), key names (`keys`, `separator`), or the raw value (`raw`). */
  private kvRead(key: string, q: URLSearchParams): Computed {
    if (q.has('keys')) {
      const { index, keys } = this.kv.keys(key, q.get('separator') ?? '');
      return keys.length > 0 ? { index, body: keys } : { index, body: undefined, status: 404 };
    }
    if (q.has('recurse')) {
      const { index, entries } = this.kv.list(key);
      return entries.length > 0 ? { index, body: entries.map((e) => entryJson(e)) } : { index, body: undefined, status: 404 };
    }
    if (key === '') throw new HttpError(400, 'Missing key name');
    const { index, entry } = this.kv.get(key);
    if (!entry) return { index, body: undefined, status: 404 };
    return q.has('raw') ? { index, body: undefined, raw: entry.value } : { index, body: [entryJson(entry)] };
  }

  private kvWrite(method: string, key: string, q: URLSearchParams, body: Buffer): { status: number; body: unknown } {
    if (key === '') throw new HttpError(400, 'Missing key name');
    if (q.has('acquire') || q.has('release')) throw new HttpError(500, 'fake-consul: sessions are not implemented');
    const uint = (name: string): number | undefined => {
      if (!q.has(name)) return undefined;
      const v = q.get(name) ?? '';
      if (!/^\d+$/.test(v)) throw new HttpError(400, `Invalid ${name === 'cas' ? 'CAS index' : 'flags'}`);
      return Number(v);
    };
    const cas = uint('cas');
    if (method === 'DELETE') {
      return { status: 200, body: this.kv.delete(key, { recurse: q.has('recurse'), ...(cas !== undefined ? { cas } : {}) }) };
    }
    const flags = uint('flags');
    return {
      status: 200,
      body: this.kv.put(key, body, { ...(cas !== undefined ? { cas } : {}), ...(flags !== undefined ? { flags } : {}) }),
    };
  }

  private async txn(body: Buffer): Promise<{ status: number; body: unknown }> {
    let ops: unknown;
    try {
      ops = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new HttpError(400, `Failed to parse body: ${(e as Error).message}`);
    }
    if (!Array.isArray(ops)) throw new HttpError(400, 'Failed to parse body: want a JSON array of operations');
    const hook = this.txnHook;
    this.txnHook = undefined;
    if (hook) await hook();
    return this.kv.txn(ops);
  }

  /** Resolves on the next state change, after `ms`, or when the client goes away. */
  private nextChange(ms: number, res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        res.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      res.on('close', done);
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.handle(req, res).catch((e: unknown) => {
      if (res.headersSent || res.destroyed) return;
      const status = e instanceof HttpError || e instanceof KvHttpError ? e.status : 500;
      const msg = e instanceof Error ? e.message : String(e);
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(msg) });
      res.end(msg);
    });
  }

  async listen(port: number): Promise<void> {
    const server = createServer((req, res) => this.onRequest(req, res));
    // Blocking queries legitimately hold a request for minutes.
    server.requestTimeout = 0;
    server.keepAliveTimeout = 30_000;
    for (let attempt = 0; ; attempt++) {
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, this.opts.host ?? '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
          });
        });
        break;
      } catch (e) {
        // Re-binding the port after pause can race the kernel releasing it.
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20 || port === 0) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async pause(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
    await closed;
  }

  async resume(): Promise<void> {
    if (this.server) return;
    await this.listen(this.port);
  }

  async stop(): Promise<void> {
    await this.pause();
    for (const w of [...this.waiters]) w();
  }
}

export async function startFakeConsul(opts: FakeConsulOptions = {}): Promise<FakeConsul> {
  const f = new FakeConsulServer(opts);
  await f.listen(opts.port ?? 0);
  return f;
}
