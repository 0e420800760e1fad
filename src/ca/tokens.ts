import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { checkHostName } from '../api/host-record.js';
import type { TokenView } from '../api/http/hosts.js';
import { ErrorCode, VmeshError, vmeshError } from '../lib/errors.js';
import { err, ok, type Result } from '../lib/result.js';
import type { Store, StoreOp, StoreValue } from '../store/store.js';

/*
 * Join token text: `vmesh1.<id>.<secret>.<ca-hash>`
 *   vmesh1  format version
 *   id      6 chars [a-z0-9], public: names the token in `token list`/`revoke` and in logs
 *   secret  22 chars [a-z2-7] (110 random bits); the controller keeps only its SHA-256
 *   ca-hash 64 hex chars: SHA-256 of the controller CA's SubjectPublicKeyInfo (kubeadm's discovery hash
 *           without the `sha256:` prefix), so the agent can verify the controller before sending anything
 * Like kubeadm's `abcdef.0123456789abcdef` bootstrap token plus its --discovery-token-ca-cert-hash, in one string.
 */
const TOKEN_RE = /^vmesh1\.([a-z0-9]{6})\.([a-z0-9]{16,64})\.([0-9a-f]{64})$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const PREFIX = 'tokens/';

export interface ParsedToken {
  readonly id: string;
  readonly secret: string;
  readonly caHashHex: string;
}

export interface TokenInfo {
  readonly id: string;
  readonly host: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly used: boolean;
  readonly usedAt?: Date;
}

/** A token as GET /v1/tokens serves it: times as ISO-8601, never the secret. */
export function tokenView(t: TokenInfo): TokenView {
  return {
    id: t.id,
    host: t.host,
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt.toISOString(),
    used: t.used,
    ...(t.usedAt ? { usedAt: t.usedAt.toISOString() } : {}),
  };
}

interface StoredToken {
  readonly host: string;
  readonly secretSha256: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly usedAt: string | null;
}

/** Splits token text into its parts; the error says what is wrong without echoing the secret. */
export function parseToken(text: string): Result<ParsedToken, string> {
  const m = TOKEN_RE.exec(text.trim());
  if (!m) {
    const head = text.trim().split('.')[0] ?? '';
    return err(
      head !== 'vmesh1'
        ? `not a vmesh join token (want vmesh1.<id>.<secret>.<ca-hash>, got a value starting "${head.slice(0, 8)}")`
        : 'malformed vmesh join token (want vmesh1.<6 chars [a-z0-9]>.<16+ chars [a-z0-9]>.<64 hex chars>)',
    );
  }
  return ok({ id: m[1] ?? '', secret: m[2] ?? '', caHashHex: m[3] ?? '' });
}

function randomText(n: number): string {
  const bytes = randomBytes(n);
  return [...bytes].map((b) => BASE32[b & 31]).join('');
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();
const UNKNOWN_SECRET_SHA256 = sha256('vmesh: no such token').toString('hex');

function decode(id: string, v: StoreValue | undefined): StoredToken | undefined {
  if (v === undefined) return undefined;
  const r = v as Partial<StoredToken>;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.host !== 'string' ||
    typeof r.secretSha256 !== 'string' ||
    typeof r.expiresAt !== 'string'
  ) {
    throw vmeshError(ErrorCode.StoreFailed, `store: token record ${PREFIX}${id} is malformed`);
  }
  return { host: r.host, secretSha256: r.secretSha256, createdAt: String(r.createdAt), expiresAt: r.expiresAt, usedAt: r.usedAt ?? null };
}

/** Single-use, expiring join tokens (`vmesh token create --host h2`), kept in the controller's store under tokens/<id>. */
export class TokenService {
  constructor(
    private readonly store: Store,
    private readonly ca: { caHash(): string },
    private readonly now: () => number = Date.now,
  ) {}

  async create(opts: { host: string; ttlSeconds: number }): Promise<{ token: string; id: string; expiresAt: Date }> {
    checkHostName(opts.host, 'token host');
    if (!Number.isInteger(opts.ttlSeconds) || opts.ttlSeconds <= 0) {
      throw vmeshError(ErrorCode.InvalidResource, `token ttl: ${opts.ttlSeconds} is not a positive whole number of seconds`);
    }
    const secret = randomText(22);
    const createdAt = new Date(this.now());
    const expiresAt = new Date(createdAt.getTime() + opts.ttlSeconds * 1000);
    for (let attempt = 0; attempt < 8; attempt++) {
      const id = randomText(6);
      const record: StoredToken = {
        host: opts.host,
        secretSha256: sha256(secret).toString('hex'),
        createdAt: createdAt.toISOString(),
        expiresAt: expiresAt.toISOString(),
        usedAt: null,
      };
      let clash = false;
      await this.store.txn((s) => {
        clash = s.get(PREFIX + id) !== undefined;
        return clash ? [] : [{ op: 'put', key: PREFIX + id, value: { ...record } }];
      });
      if (!clash) return { token: `vmesh1.${id}.${secret}.${this.ca.caHash().replace(/^sha256:/, '')}`, id, expiresAt };
    }
    throw vmeshError(ErrorCode.Conflict, 'token create: could not find a free token id after 8 attempts');
  }

  /**
   * Whether the token would be accepted for `host` now, without using it: Join checks this before it reads
   * anything else of the request, so an unauthenticated caller costs one hash and one lookup.
   */
  check(tokenText: string, host?: string): void {
    this.verify(tokenText, host, (key) => this.store.get(key));
  }

  /**
   * Uses the token once, atomically: a second use is refused with VMESH_ERR_TOKEN_USED (the record is kept
   * until it expires so reuse is reported as such). When `host` is given it must be the host the token was made for.
   */
  async consume(tokenText: string, host?: string): Promise<{ host: string }> {
    let result: { host: string; key: string; rec: StoredToken; now: number } | undefined;
    await this.store.txn((s) => {
      result = this.verify(tokenText, host, (key) => s.get(key));
      const { key, rec, now } = result;
      return [{ op: 'put', key, value: { ...rec, usedAt: new Date(now).toISOString() } }];
    });
    if (!result) throw new VmeshError(ErrorCode.Internal, 'join token: transaction ended without a result');
    return { host: result.host };
  }

  private verify(
    tokenText: string,
    host: string | undefined,
    get: (key: string) => StoreValue | undefined,
  ): { host: string; key: string; rec: StoredToken; now: number } {
    const parsed = parseToken(tokenText);
    if (!parsed.ok) throw vmeshError(ErrorCode.TokenInvalid, `join token: ${parsed.error}`);
    const { id, secret, caHashHex } = parsed.value;
    const ours = this.ca.caHash().replace(/^sha256:/, '');
    if (caHashHex !== ours) {
      throw vmeshError(ErrorCode.TokenInvalid, `join token ${id}: made for CA sha256:${caHashHex}, this controller's CA is sha256:${ours}`);
    }
    const rec = decode(id, get(PREFIX + id));
    // An unknown id is compared against a dummy hash, and both failures read the same: the answer does not
    // tell a caller which token ids exist.
    const want = Buffer.from(rec?.secretSha256 ?? UNKNOWN_SECRET_SHA256, 'hex');
    const got = sha256(secret);
    const same = want.length === got.length && timingSafeEqual(want, got);
    if (!rec || !same) {
      throw vmeshError(
        ErrorCode.TokenInvalid,
        `join token ${id}: unknown or wrong secret (never created, revoked, expired and purged, or mistyped)`,
      );
    }
    if (rec.usedAt) throw vmeshError(ErrorCode.TokenUsed, `join token ${id}: already used at ${rec.usedAt} (tokens are single-use)`);
    const now = this.now();
    if (now >= Date.parse(rec.expiresAt)) throw vmeshError(ErrorCode.TokenExpired, `join token ${id}: expired at ${rec.expiresAt}`);
    if (host !== undefined && host !== rec.host) {
      throw vmeshError(ErrorCode.TokenInvalid, `join token ${id}: made for host "${rec.host}", not "${host}"`);
    }
    return { host: rec.host, key: PREFIX + id, rec, now };
  }

  list(): TokenInfo[] {
    return this.store.list(PREFIX).flatMap(({ key, value }) => {
      const id = key.slice(PREFIX.length);
      const r = decode(id, value);
      if (!r) return [];
      const info: TokenInfo = {
        id,
        host: r.host,
        createdAt: new Date(r.createdAt),
        expiresAt: new Date(r.expiresAt),
        used: r.usedAt !== null,
        ...(r.usedAt ? { usedAt: new Date(r.usedAt) } : {}),
      };
      return [info];
    });
  }

  /** Deletes the token; VMESH_ERR_NOT_FOUND if there is none with that id. */
  async revoke(id: string): Promise<void> {
    await this.store.txn((s) => {
      if (s.get(PREFIX + id) === undefined) throw vmeshError(ErrorCode.NotFound, `token "${id}" not found`);
      return [{ op: 'delete', key: PREFIX + id }];
    });
  }

  /** Purges expired tokens, used or not; returns how many. */
  async gc(): Promise<number> {
    let n = 0;
    await this.store.txn((s) => {
      const now = this.now();
      const ops: StoreOp[] = s
        .list(PREFIX)
        .filter(({ key, value }) => now >= Date.parse(decode(key.slice(PREFIX.length), value)?.expiresAt ?? ''))
        .map(({ key }) => ({ op: 'delete', key }));
      n = ops.length;
      return ops;
    });
    return n;
  }
}
