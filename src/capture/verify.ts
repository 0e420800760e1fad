import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import * as packet from 'dns-packet';
import { CAPTURE_PROBE_NAME, type CaptureConfig } from '../api/capture.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { originalDst } from '../lib/native.js';

export interface VerifyCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly checks: readonly VerifyCheck[];
}

/**
 * The probe goes to one of this host's own addresses (not loopback, which capture skips): if capture
 * works it lands on the outbound port; if it does not, the host's own stack refuses it. Either way no
 * packet leaves the host.
 */
function probeAddresses(ipv6: boolean): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv4' && !out.some((x) => !x.includes(':'))) out.push(a.address);
      if (ipv6 && a.family === 'IPv6' && !a.address.startsWith('fe80') && !out.some((x) => x.includes(':'))) out.push(a.address);
    }
  }
  return out;
}

function listen(server: Server, port: number, host: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(false) : reject(e)));
    server.listen({ port, host, ipv6Only: host.includes(':') }, () => resolve(true));
  });
}

/** A port on `host` with no listener: bind one, read it, close it. */
async function closedPort(host: string): Promise<number> {
  const s = createServer();
  await listen(s, 0, host);
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  if (!addr || typeof addr === 'string') throw vmeshError(ErrorCode.Internal, 'could not pick a probe port');
  return addr.port;
}

function tryConnect(host: string, port: number, timeoutMs: number): Promise<'connected' | string> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code ?? e.message);
    });
  });
}

/** Connects from a child running as the proxy's uid/gid; that traffic must not be captured. */
function connectAs(uid: number, gid: number, host: string, port: number): Promise<string> {
  const script = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)});setTimeout(()=>{console.log('timeout');process.exit(0)},2000)`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { uid, gid, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', (e) => resolve(`spawn failed: ${e.message}`));
    child.on('close', () => resolve(out.trim()));
  });
}

async function verifyTcp(cfg: CaptureConfig, host: string): Promise<VerifyCheck[]> {
  const name = `outbound tcp via ${host}`;
  const port = await closedPort(host);
  const server = createServer();
  const seen: Array<string> = [];
  server.on('connection', (c) => {
    const od = originalDst(c);
    seen.push(od.ok ? `${od.value.address}:${od.value.port}` : od.error.message);
    c.destroy();
  });
  const own = await listen(server, cfg.outboundPort, host.includes(':') ? '::' : '0.0.0.0');
  try {
    const r = await tryConnect(host, port, 2000);
    if (!own) {
      // The proxy holds the port: a connection to a port nobody listens on can only succeed through it.
      return [
        {
          name,
          ok: r === 'connected',
          detail: r === 'connected' ? `redirected to the proxy on :${cfg.outboundPort}` : `not redirected (${r})`,
        },
      ];
    }
    await new Promise((res) => setTimeout(res, 50));
    const want = `${host}:${port}`;
    const checks: VerifyCheck[] = [
      {
        name,
        ok: r === 'connected' && seen[0] === want,
        detail:
          r === 'connected'
            ? `redirected to :${cfg.outboundPort}, original destination ${seen[0] ?? '?'} (want ${want})`
            : `not redirected (${r})`,
      },
    ];
    const asProxy = await connectAs(cfg.proxyUid, cfg.proxyGid, host, port);
    checks.push({
      name: `proxy uid ${cfg.proxyUid} bypass via ${host}`,
      ok: asProxy === 'ECONNREFUSED',
      detail: asProxy === 'ECONNREFUSED' ? 'not redirected, as it must be' : `unexpected: ${asProxy}`,
    });
    return checks;
  } finally {
    await new Promise<void>((r) => (own ? server.close(() => r()) : r()));
  }
}

async function verifyDns(cfg: CaptureConfig, host: string): Promise<VerifyCheck> {
  const family = host.includes(':') ? 'udp6' : 'udp4';
  const listener = createSocket(family);
  const bound = await new Promise<boolean>((resolve) => {
    listener.once('error', () => resolve(false));
    listener.bind(cfg.dnsPort, host.includes(':') ? '::' : '0.0.0.0', () => resolve(true));
  });
  const client = createSocket(family);
  // A minimal DNS query (id 0x766d, one question: CAPTURE_PROBE_NAME A IN): the agent's DNS proxy answers it
  // itself at once, and any reply (NXDOMAIN, SERVFAIL alike) proves port 53 reached :dnsPort.
  const q = packet.encode({
    id: 0x766d,
    type: 'query',
    flags: packet.RECURSION_DESIRED,
    questions: [{ type: 'A', name: CAPTURE_PROBE_NAME }],
  });
  try {
    const got = new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 1500);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      if (bound) listener.once('message', done);
      else client.once('message', done);
    });
    client.send(q, 53, host);
    const ok = await got;
    return { name: `dns udp/53 via ${host}`, ok, detail: ok ? `reached :${cfg.dnsPort}` : `no answer on :${cfg.dnsPort}` };
  } finally {
    client.close();
    if (bound) listener.close();
  }
}

/** Proves capture works on this host by sending probe connections through it. */
export async function verifyCapture(cfg: CaptureConfig): Promise<VerifyReport> {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid === cfg.proxyUid || gid === cfg.proxyGid) {
    throw vmeshError(
      ErrorCode.CaptureVerifyFailed,
      `capture verify runs as uid ${uid}/gid ${gid}, which capture excludes: run it as another user`,
    );
  }
  const hosts = probeAddresses(cfg.ipv6);
  if (hosts.length === 0) {
    throw vmeshError(ErrorCode.CaptureVerifyFailed, 'capture verify needs a non-loopback address on this host to probe');
  }
  const checks: VerifyCheck[] = [];
  for (const h of hosts) {
    checks.push(...(await verifyTcp(cfg, h)));
    if (cfg.captureDns) checks.push(await verifyDns(cfg, h));
  }
  return { ok: checks.every((c) => c.ok), checks };
}
