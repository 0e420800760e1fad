import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type OnReadOpts, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ipFamily, normalizeIp, type OrigDstAddr, type SocketAddr, toOrigDst } from './addr.js';
import { ErrorCode, VmeshError, vmeshError } from './errors.js';
import { err, ok, type Result } from './result.js';

interface NativeAddon {
  originalDst(fd: number): { address: string; port: number; family: 'IPv4' | 'IPv6' };
  nftRun(batch: string, opts?: { json?: boolean }): string;
  nftAvailable(): { ok: boolean; error?: string };
  NftSession: new () => { run(batch: string, opts?: { json?: boolean }): string; close(): void };
  socketUid(family: 4 | 6, srcAddr: string, srcPort: number, dstAddr: string, dstPort: number): number;
  abstractUnixConnect(name: string): number;
  mallocTune(mmapThreshold: number, trimThreshold: number): boolean;
}

let addon: NativeAddon | undefined;

/** The package root: the addon sits at native/build there, whether we run from src/ (tsx) or dist/src/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'native'))) {
    const up = dirname(dir);
    if (up === dir) throw vmeshError(ErrorCode.NativeUnavailable, 'cannot find the vmesh package root for the native addon');
    dir = up;
  }
  return dir;
}

export function loadNative(): NativeAddon {
  if (addon) return addon;
  const path = join(packageRoot(), 'native', 'build', 'Release', 'vmesh_native.node');
  if (!existsSync(path)) {
    throw vmeshError(ErrorCode.NativeUnavailable, `native addon missing at ${path}: run "npm install" (it builds native/ with node-gyp)`);
  }
  addon = createRequire(import.meta.url)(path) as NativeAddon;
  return addon;
}

function socketFd(socket: Socket): number {
  // grpc-js and friends do the same: libuv's TCP handle exposes its fd on Linux.
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw vmeshError(ErrorCode.Internal, 'socket has no file descriptor (closed?)');
  return fd;
}

/**
 * The pre-redirect destination of an accepted connection. A connection that was not redirected has no
 * original destination of its own: conntrack either has none (ENOENT) or reports the socket's local address,
 * so both come back as `ok: false` with code VMESH_ERR_NOT_REDIRECTED.
 */
export function originalDst(socket: Socket): Result<OrigDstAddr, VmeshError> {
  const fd = socketFd(socket);
  let raw: SocketAddr;
  try {
    raw = loadNative().originalDst(fd);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT') return err(vmeshError(ErrorCode.NotRedirected, 'connection was not redirected (no conntrack entry)'));
    throw new VmeshError(ErrorCode.Internal, (e as Error).message, { errno: (e as { errno?: number }).errno }, { cause: e });
  }
  const local = socket.address();
  if ('port' in local && raw.port === local.port && normalizeIp(raw.address) === normalizeIp(local.address)) {
    return err(vmeshError(ErrorCode.NotRedirected, `connection to ${raw.address}:${raw.port} was not redirected`));
  }
  return ok(toOrigDst({ ...raw, family: ipFamily(raw.address) ?? raw.family }));
}

/** Runs one libnftables transaction; a failure anywhere leaves the rule set as it was. */
export function nftRun(batch: string, opts: { json?: boolean } = {}): string {
  return nftCall(() => loadNative().nftRun(batch, opts));
}

/**
 * One libnftables context (so one netfilter netlink socket) kept open for the owner's whole life. A table
 * created through it with `flags owner` can be changed only through it, and the kernel deletes the table when
 * the socket closes: on close(), or when the process dies by any cause, kill -9 included.
 */
export interface NftSession {
  run(batch: string, opts?: { json?: boolean }): string;
  close(): void;
}

export function openNftSession(): NftSession {
  const s = nftCall(() => new (loadNative().NftSession)());
  let closed = false;
  return {
    run: (batch, opts = {}) => nftCall(() => s.run(batch, opts)),
    close: () => {
      if (!closed) s.close();
      closed = true;
    },
  };
}

function nftCall<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof VmeshError) throw e;
    const code = (e as { code?: string }).code;
    if (code === 'VMESH_ERR_NFT_UNAVAILABLE') throw vmeshError(ErrorCode.NftUnavailable, (e as Error).message);
    throw new VmeshError(ErrorCode.NftFailed, `nftables refused the batch: ${nftErrorSummary((e as Error).message)}`, {
      nftError: (e as { nftError?: string }).nftError,
    });
  }
}

export function nftAvailable(): Result<true, string> {
  const r = loadNative().nftAvailable();
  return r.ok ? ok(true) : err(r.error ?? 'libnftables unavailable');
}

/**
 * libnftables echoes the whole input and a caret line after each error; for a one-line message keep
 * only its "Error: ..." statements.
 */
export function nftErrorSummary(text: string): string {
  const errors = text
    .split('\n')
    .map((l) => /Error: (.*)$/.exec(l)?.[1]?.trim())
    .filter((l): l is string => !!l);
  return errors.length > 0 ? [...new Set(errors)].join('; ') : (text.split('\n')[0] ?? text);
}

/**
 * The uid owning the local TCP socket `src` -> `dst` (the application end of a captured connection), by one
 * sock_diag netlink lookup; undefined when there is no such local socket (the peer is on another host).
 */
export function localSocketOwner(
  src: { readonly address: string; readonly port: number },
  dst: { readonly address: string; readonly port: number },
): number | undefined {
  const s = normalizeIp(src.address);
  const d = normalizeIp(dst.address);
  const family = ipFamily(s) === 'IPv6' ? 6 : 4;
  if ((ipFamily(d) === 'IPv6' ? 6 : 4) !== family) return undefined;
  const uid = loadNative().socketUid(family, s, src.port, d, dst.port);
  return uid >= 0 ? uid : undefined;
}

/**
 * A socket connected to `name` in Linux's abstract unix namespace (`@name` in Envoy's spelling, without the `@`),
 * addressed with the name's exact length as Envoy, Go, systemd and socat bind it; Node's own connect pads the
 * name to the whole sun_path and so reaches only names Node bound. `err` carries the errno code (ECONNREFUSED...).
 */
export function connectAbstractUnix(
  name: string,
  opts: { readonly allowHalfOpen?: boolean; readonly onread?: OnReadOpts } = {},
): Result<Socket, string> {
  let fd: number;
  try {
    fd = loadNative().abstractUnixConnect(name);
  } catch (e) {
    if (e instanceof VmeshError) throw e;
    return err((e as { code?: string }).code ?? (e as Error).message);
  }
  return ok(new Socket({ ...opts, fd, readable: true, writable: true }));
}

/**
 * Large buffers (xDS responses, proxied bodies) straight from mmap and back to the system when freed: glibc's
 * adaptive threshold otherwise serves them from a heap that fragments and never shrinks (native/src/malloc-tune.cc).
 * Best effort: without the addon or on another libc the process runs with the defaults.
 */
export function tuneMalloc(): Result<void, VmeshError> {
  try {
    if (loadNative().mallocTune(128 * 1024, 1024 * 1024)) return ok(undefined);
    return err(vmeshError(ErrorCode.NativeUnavailable, 'mallopt refused the thresholds'));
  } catch (e) {
    return err(e instanceof VmeshError ? e : vmeshError(ErrorCode.NativeUnavailable, `malloc tuning: ${(e as Error).message}`));
  }
}
