import type { Socket } from 'node:net';
import { formatSocketAddr, type RemoteAddr } from '../../lib/addr.js';
import type { Logger } from '../../lib/logger.js';
import { evaluateRbac } from '../match/rbac-eval.js';
import type { FilterChain, ProxyConfig } from '../proxy-config.js';
import type { LiveHttpConnection } from '../runtime-types.js';
import { type ChainInputs, selectFilterChain } from './chains.js';

/**
 * Open downstream connections and what admitted them, so that a config swap can take back what the new config no
 * longer admits. As Envoy drains the connections of a listener's removed filter chains, each connection re-runs
 * filter chain selection with the inputs recorded at accept. It is drained when no chain takes it now, when the
 * chain it gets wants a transport it did not use (plaintext under STRICT, or a client certificate it never showed),
 * when the kind of action changed, or when its TCP RBAC now denies the peer. An HTTP connection whose chain still
 * takes it runs its next requests under the new chain's action (RBAC is per request). A listener that is gone
 * leaves its connections be (it stopped accepting; it did not refuse the peer). Nothing else is touched.
 */

export interface LiveConnection {
  /** The listener whose chains admitted it (a virtual listener's for a captured connection). */
  readonly listener: string;
  readonly inputs: ChainInputs;
  /** TLS was terminated; `peerIdentity` is the client certificate's SPIFFE id. */
  readonly tls: boolean;
  peerIdentity?: string;
  /** The client's end of the connection (what RBAC's source.ip sees). */
  readonly remote: RemoteAddr;
  /** HTTP: drained through the handler. TCP: the socket, closed. */
  http?: LiveHttpConnection | undefined;
  readonly socket: Socket;
  chain: FilterChain;
  /** Listener and match inputs as one string (made on the first swap): connections alike share one selection. */
  key?: string;
}

/** Chain selections of one swap, by LiveConnection.key (null: no chain). */
type Selections = Map<string, FilterChain | null>;

function select(c: LiveConnection, config: ProxyConfig, memo: Selections): FilterChain | null | undefined {
  const x = c.inputs;
  c.key ??= `${c.listener}\n${x.dst.address}\n${x.dst.port}\n${x.sni ?? ''}\n${x.transport}\n${x.alpn.join(',')}`;
  let chain = memo.get(c.key);
  if (chain !== undefined) return chain;
  const l = config.listeners.get(c.listener);
  // A removed listener stops accepting; what it accepted lives on (it is not a policy refusing the peer).
  if (!l) return undefined;
  chain = selectFilterChain(l, x) ?? null;
  memo.set(c.key, chain);
  return chain;
}

/** Why the new config no longer admits a connection, or undefined when it does (its new chain is then set). */
export function readmit(c: LiveConnection, config: ProxyConfig, memo: Selections = new Map()): string | undefined {
  const chain = select(c, config, memo);
  if (chain === undefined) return undefined;
  if (chain === null) return 'no filter chain matches';
  if ((chain.tls !== undefined) !== c.tls) return c.tls ? 'the chain is now plaintext' : 'plaintext is no longer accepted';
  if (chain.tls?.requireClientCert && c.peerIdentity === undefined) return 'a client certificate is now required';
  if (chain.action.kind !== c.chain.action.kind) return 'the chain changed protocol';
  if (chain.action.kind === 'tcp' && chain.action.rbac.length > 0) {
    const decision = evaluateRbac(chain.action.rbac, {
      ...(c.peerIdentity ? { peerIdentity: c.peerIdentity } : {}),
      remote: c.remote,
      originalDst: c.inputs.dst,
    });
    if (!decision.allowed) return `rbac_access_denied_matched_policy[${decision.policy ?? 'none'}]`;
  }
  c.chain = chain;
  return undefined;
}

/** Runs `readmit` over every open connection once per swap: drains the ones it refuses, rebinds HTTP ones it keeps. */
export function recheckConnections(live: Iterable<LiveConnection>, config: ProxyConfig, logger: Logger): number {
  let drained = 0;
  const memo: Selections = new Map();
  for (const c of live) {
    const why = readmit(c, config, memo);
    if (why === undefined) {
      if (c.http && c.chain.action.kind === 'http') c.http.rebind(c.chain.action);
      continue;
    }
    drained++;
    logger.debug(
      { listener: c.listener, remote: formatSocketAddr(c.remote), why },
      'config change: draining a connection it no longer admits',
    );
    if (c.http) c.http.drain();
    else c.socket.destroy();
  }
  if (drained > 0) logger.info({ version: config.version, drained }, 'config change: drained connections the new config no longer admits');
  return drained;
}
