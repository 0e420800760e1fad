import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChannelCredentials } from '@grpc/grpc-js';
import {
  gatherHostFacts,
  joinController,
  pemProvider,
  pemUpdates,
  renewHostCert,
  shouldRenew,
  updatableChannelCredentials,
} from '../ca/index.js';
import type { AgentConfig } from '../config/agent.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

export interface HostCreds {
  keyPem: string;
  certPem: string;
  trustBundlePem: string;
}

const files = (dir: string) => ({
  key: join(dir, 'host-key.pem'),
  cert: join(dir, 'host-cert.pem'),
  bundle: join(dir, 'trust-bundle.pem'),
});

async function readCreds(dir: string): Promise<HostCreds | undefined> {
  const f = files(dir);
  try {
    return {
      keyPem: await readFile(f.key, 'utf8'),
      certPem: await readFile(f.cert, 'utf8'),
      trustBundlePem: await readFile(f.bundle, 'utf8'),
    };
  } catch {
    return undefined;
  }
}

async function writeCreds(dir: string, c: HostCreds): Promise<void> {
  const f = files(dir);
  // The private key never leaves this host and only root reads it.
  await writeFileAtomic(f.key, c.keyPem, 0o600);
  await writeFileAtomic(f.cert, c.certPem, 0o644);
  await writeFileAtomic(f.bundle, c.trustBundlePem, 0o644);
}

/** The host's credentials: those on disk, else a join with the token (which is single use). */
export async function ensureHostCredentials(cfg: AgentConfig, logger: Logger): Promise<HostCreds> {
  const existing = await readCreds(cfg.dataDir);
  if (existing) return existing;
  const token = cfg.token ?? (cfg.tokenFile ? (await readFile(cfg.tokenFile, 'utf8').catch(() => undefined))?.trim() : undefined);
  if (!token)
    throw vmeshError(
      ErrorCode.InvalidConfig,
      `agent has not joined yet and has no token: give --token-file (from "vmesh token create --host ${cfg.hostName}")`,
    );
  let lastError: unknown;
  for (const address of cfg.controllers) {
    try {
      const joined = await joinController({ address, token, hostName: cfg.hostName, facts: await gatherHostFacts() });
      const creds = { keyPem: joined.keyPem, certPem: joined.certPem, trustBundlePem: joined.trustBundlePem };
      await writeCreds(cfg.dataDir, creds);
      logger.info({ controller: address, host: cfg.hostName, notAfter: joined.notAfter }, 'joined the mesh');
      return creds;
    } catch (e) {
      lastError = e;
      logger.warn({ controller: address, err: (e as Error).message }, 'join failed; trying the next controller');
    }
  }
  throw lastError;
}

/** Renews the host certificate when it is due; returns the new credentials, or undefined when not due. */
export async function renewIfDue(cfg: AgentConfig, creds: HostCreds, logger: Logger, force = false): Promise<HostCreds | undefined> {
  const { X509Certificate } = await import('node:crypto');
  const cert = new X509Certificate(creds.certPem);
  if (!force && !shouldRenew(new Date(cert.validFrom), new Date(cert.validTo))) return undefined;
  for (const address of cfg.controllers) {
    try {
      const r = await renewHostCert({ address, keyPem: creds.keyPem, certPem: creds.certPem, trustBundlePem: creds.trustBundlePem });
      const next = { keyPem: r.keyPem, certPem: r.certPem, trustBundlePem: r.trustBundlePem };
      await writeCreds(cfg.dataDir, next);
      logger.info({ controller: address, notAfter: r.notAfter }, 'host certificate renewed');
      return next;
    } catch (e) {
      logger.warn({ controller: address, err: (e as Error).message }, 'renewal failed; trying the next controller');
    }
  }
  return undefined;
}

/** Runs `fn` against each controller in turn until one answers: the agent fails over between controllers. */
export async function onAnyController<T>(controllers: readonly string[], fn: (address: string) => Promise<T>): Promise<T> {
  let last: unknown = vmeshError(ErrorCode.InvalidConfig, 'no controller address configured');
  for (const address of controllers) {
    try {
      return await fn(address);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

/**
 * The host's credentials as the agent holds them now. One provider behind every channel to the controllers: a
 * renewed certificate or a rotated bundle reaches new connections (xDS reconnects, reports) without rebuilding them.
 */
export class HostTls {
  private readonly tls: ReturnType<typeof pemProvider>;
  readonly channelCredentials: ChannelCredentials;

  constructor(private current: HostCreds) {
    this.tls = pemProvider(current.trustBundlePem, current.keyPem, current.certPem);
    this.channelCredentials = updatableChannelCredentials(this.tls);
  }

  get creds(): HostCreds {
    return this.current;
  }

  update(next: HostCreds): void {
    this.current = next;
    this.tls.update(...pemUpdates(next.trustBundlePem, next.keyPem, next.certPem));
  }
}
