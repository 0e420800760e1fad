import assert from 'node:assert/strict';
import { type Http2Server, createServer as h2server } from 'node:http2';
import { connect as netConnect, createServer as netServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Http2Keepalive } from '../../../../src/proxy/proxy-config.js';
import {
  cluster,
  forward,
  listenNet,
  type ProxyHarness,
  prefix,
  proxyConfig,
  route,
  send,
  startProxy,
  table,
  vhost,
} from './http-fixture.js';

/** A TCP relay to `target` that can go silent: a frozen connection still reads, but forwards nothing either way. */
interface Relay {
  readonly port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Freezes every open connection; resolves when the first of them is closed by its client. */
  freeze(): Promise<void>;
  close(): Promise<void>;
}

async function relay(target: number): Promise<Relay> {
  const open = new Set<{ down: Socket; up: Socket; frozen: boolean }>();
  let onClosed: (() => void) | undefined;
  const server: Server = netServer((down) => {
    r.connections++;
    const up = netConnect(target, '127.0.0.1');
    const pair = { down, up, frozen: false };
    open.add(pair);
    down.on('data', (d: Buffer) => {
      if (!pair.frozen) up.write(d);
    });
    up.on('data', (d: Buffer) => {
      if (!pair.frozen) down.write(d);
    });
    const end = () => {
      if (!open.delete(pair)) return;
      down.destroy();
      up.destroy();
      if (pair.frozen) onClosed?.();
    };
    for (const s of [down, up]) {
      s.on('error', end);
      s.on('close', end);
      s.on('end', end);
    }
  });
  const r: Relay = {
    port: await listenNet(server),
    connections: 0,
    freeze: () =>
      new Promise<void>((resolve) => {
        assert.ok(open.size > 0, 'no open connection to freeze');
        for (const p of open) p.frozen = true;
        onClosed = resolve;
      }),
    close: async () => {
      for (const p of open) {
        p.down.destroy();
        p.up.destroy();
      }
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
  return r;
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('HTTP/2 upstream keepalive (DestinationRule connectionPool.http.http2KeepAlive)', () => {
  let h2u: Http2Server;
  let h2Port = 0;
  let sessions = 0;
  let pings = 0;
  let r: Relay;
  let p: ProxyHarness;
  const ka: Http2Keepalive = { intervalMs: 200, timeoutMs: 300, jitterPercent: 15 };

  before(async () => {
    h2u = h2server();
    h2u.on('session', (s) => {
      sessions++;
      s.on('ping', () => pings++);
    });
    h2u.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end('pong');
    });
    h2Port = await listenNet(h2u as unknown as Server);
    r = await relay(h2Port);
    const cfg = proxyConfig(
      [cluster('direct', [h2Port], { http2: true, http2Keepalive: ka }), cluster('relayed', [r.port], { http2: true, http2Keepalive: ka })],
      [
        table('r', [
          vhost('any', ['*'], [route('direct', prefix('/direct'), forward('direct')), route('relayed', prefix('/'), forward('relayed'))]),
        ]),
      ],
    );
    p = await startProxy(cfg);
  });

  after(async () => {
    await p.close();
    await r.close();
    await new Promise<void>((res) => h2u.close(() => res()));
  });

  test('a PING about every interval on the open session, which stays open while they are answered', async () => {
    const before = { sessions, pings };
    assert.equal((await send(p.port, { path: '/direct' })).status, 200);
    await sleep(1100);
    const seen = pings - before.pings;
    // 200-230 ms apart: about 5 in 1.1 s; the bounds only allow for a loaded machine.
    assert.ok(seen >= 2 && seen <= 8, `${seen} PINGs in 1.1 s at a 200 ms interval`);
    assert.equal(sessions - before.sessions, 1, 'one session, kept');
    assert.equal((await send(p.port, { path: '/direct' })).status, 200);
    assert.equal(sessions - before.sessions, 1, 'the next request reuses it');
  });

  test('a peer that stops answering PINGs is closed after the timeout; the next request gets a new connection', async () => {
    assert.equal((await send(p.port, { path: '/x' })).status, 200);
    assert.equal(r.connections, 1);
    // The first PING after the freeze goes unanswered: closed within interval + jitter + timeout (~530 ms).
    await within(r.freeze(), 3000, 'the proxy closing the silent connection');
    const res = await within(send(p.port, { path: '/x' }), 3000, 'the next request');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'pong');
    assert.equal(r.connections, 2, 'a new upstream connection');
  });
});
