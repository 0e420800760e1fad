import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import * as packet from 'dns-packet';
import { CAPTURE_PROBE_NAME } from '../api/capture.js';
import type { Logger } from '../lib/logger.js';
import { lookup, type NameTable } from './name-table.js';
import type { ResolvConf } from './resolv-conf.js';
import { forwardQuery } from './upstream.js';

const TTL_SECONDS = 30;
// The low four flag bits are the RCODE.
const NXDOMAIN = 3;

export interface DnsProxyOptions {
  readonly port: number;
  /** Where to listen; capture redirects local queries to loopback, so 127.0.0.1 and ::1 by default. */
  readonly addresses?: readonly string[];
  readonly resolv: ResolvConf;
  readonly logger: Logger;
  /** Upstream query timeout per nameserver. */
  readonly upstreamTimeoutMs?: number;
  /** Upstream resolvers' port (53; tests use another). */
  readonly upstreamPort?: number;
}

/**
 * The agent's DNS proxy: mesh names from the controller's name table, everything else forwarded to the
 * host's resolvers (the agent's own queries are excluded from capture by its gid).
 */
export class DnsProxy {
  private table: NameTable = new Map();
  private readonly udp: UdpSocket[] = [];
  private readonly tcp: Server[] = [];
  readonly stats = { answered: 0, forwarded: 0, failed: 0 };

  constructor(private readonly opts: DnsProxyOptions) {}

  setTable(table: NameTable): void {
    this.table = table;
  }

  async start(): Promise<{ port: number }> {
    // Port 0 picks a free UDP port, and TCP then needs the same number, which another process may hold: try again.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.bindAll();
      } catch (e) {
        await this.stop();
        if (this.opts.port !== 0 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw e;
      }
    }
  }

  private async bindAll(): Promise<{ port: number }> {
    const addresses = this.opts.addresses ?? ['127.0.0.1', '::1'];
    let port = this.opts.port;
    for (const address of addresses) {
      const type = address.includes(':') ? 'udp6' : 'udp4';
      const s = await new Promise<UdpSocket>((resolve, reject) => {
        const u = createSocket({ type, ipv6Only: type === 'udp6' });
        u.once('error', reject);
        u.bind(port, address, () => {
          u.off('error', reject);
          resolve(u);
        });
      }).catch((e: NodeJS.ErrnoException) => {
        // A host without IPv6 has no ::1: serve IPv4 only rather than fail.
        if (type === 'udp6' && e.code === 'EADDRNOTAVAIL') return undefined;
        throw e;
      });
      if (!s) continue;
      s.on('error', (e) => this.opts.logger.warn({ err: e }, 'dns: udp socket error'));
      s.on('message', (msg, rinfo) => {
        void this.answer(msg, 'udp').then((reply) => {
          if (reply) s.send(reply, rinfo.port, rinfo.address);
        });
      });
      port = s.address().port;
      this.udp.push(s);
      const t = createServer((c) => this.serveTcp(c));
      await new Promise<void>((resolve, reject) => {
        t.once('error', reject);
        t.listen(port, address, () => resolve());
      });
      this.tcp.push(t);
    }
    return { port };
  }

  async stop(): Promise<void> {
    for (const u of this.udp.splice(0)) u.close();
    await Promise.all(this.tcp.splice(0).map((t) => new Promise<void>((r) => t.close(() => r()))));
  }

  private serveTcp(c: Socket): void {
    let buf = Buffer.alloc(0);
    c.setTimeout(10_000, () => c.destroy());
    c.on('error', () => {});
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void this.answer(msg, 'tcp').then((reply) => {
          if (!reply || c.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(reply.length);
          c.write(Buffer.concat([head, reply]));
        });
      }
    });
  }

  /** One query in, one reply out (undefined: drop, e.g. unparseable). */
  async answer(msg: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    let q: packet.Packet;
    try {
      q = packet.decode(msg);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (!question) return undefined;
    // Capture's own probe: answered here, never forwarded, so verifying capture does not verify the upstream.
    if (question.name.toLowerCase().replace(/\.$/, '') === CAPTURE_PROBE_NAME) {
      return packet.encode({ id: q.id, type: 'response', flags: packet.AUTHORITATIVE_ANSWER | NXDOMAIN, questions: q.questions });
    }
    const found = lookup(this.table, question.name, question.type, this.opts.resolv.search);
    if (found.kind === 'forward') {
      try {
        const reply = await forwardQuery(
          msg,
          transport,
          this.opts.resolv.nameservers,
          this.opts.upstreamTimeoutMs ?? 2000,
          this.opts.upstreamPort,
        );
        this.stats.forwarded++;
        return reply;
      } catch (e) {
        this.stats.failed++;
        this.opts.logger.debug({ err: (e as Error).message, name: question.name }, 'dns: upstream failed');
        // The low four flag bits are the RCODE: 2 = SERVFAIL, so the client tries its next resolver.
        return packet.encode({
          id: q.id,
          type: 'response',
          flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | 2,
          questions: q.questions,
        });
      }
    }
    this.stats.answered++;
    const answers: packet.Answer[] =
      found.kind === 'answer'
        ? found.ips.map((ip) => ({
            type: question.type as 'A' | 'AAAA',
            name: question.name,
            ttl: TTL_SECONDS,
            class: 'IN' as const,
            data: ip,
          }))
        : [];
    return packet.encode({
      id: q.id,
      type: 'response',
      flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
      questions: q.questions,
      answers,
    });
  }
}
