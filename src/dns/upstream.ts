import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

function udpQuery(msg: Buffer, server: string, port: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket(server.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error(`${server}: timeout`));
    }, timeoutMs);
    s.on('error', (e) => {
      clearTimeout(t);
      s.close();
      reject(e);
    });
    s.on('message', (reply) => {
      // Only the answer to this query (same id) counts.
      if (reply.readUInt16BE(0) !== msg.readUInt16BE(0)) return;
      clearTimeout(t);
      s.close();
      resolve(reply);
    });
    s.send(msg, port, server);
  });
}

function tcpQuery(msg: Buffer, server: string, port: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = connect({ host: server, port, timeout: timeoutMs });
    let buf = Buffer.alloc(0);
    const fail = (e: Error) => {
      c.destroy();
      reject(e);
    };
    c.on('timeout', () => fail(new Error(`${server}: timeout`)));
    c.on('error', fail);
    c.on('connect', () => {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(msg.length);
      c.write(Buffer.concat([head, msg]));
    });
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        c.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
  });
}

const TRUNCATED = 0x0200;

/** Forwards a query to the host's resolvers in order; a truncated UDP answer is retried over TCP. */
export async function forwardQuery(
  msg: Buffer,
  transport: 'udp' | 'tcp',
  servers: readonly string[],
  timeoutMs: number,
  port = 53,
): Promise<Buffer> {
  let last: unknown;
  for (const server of servers) {
    try {
      if (transport === 'tcp') return await tcpQuery(msg, server, port, timeoutMs);
      const reply = await udpQuery(msg, server, port, timeoutMs);
      return reply.readUInt16BE(2) & TRUNCATED ? await tcpQuery(msg, server, port, timeoutMs) : reply;
    } catch (e) {
      last = e;
    }
  }
  throw last instanceof Error ? last : new Error('no upstream resolver answered');
}
