import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as packet from 'dns-packet';
import { CAPTURE_PROBE_NAME } from '../../../src/api/capture.js';
import { DnsProxy } from '../../../src/dns/dns-proxy.js';
import { lookup, nameTableFrom } from '../../../src/dns/name-table.js';
import { parseResolvConf } from '../../../src/dns/resolv-conf.js';
import { createLogger } from '../../../src/lib/logger.js';

// dns-packet 5.6's decode sets the response code from the flags; @types/dns-packet 5.6.5 leaves it out.
declare module 'dns-packet' {
  interface DecodedPacket {
    rcode: string;
  }
}

/** The address of the first answer, when it is an A or AAAA record. */
function firstAddress(p: packet.Packet): string | undefined {
  const a = p.answers?.[0];
  return a?.type === 'A' || a?.type === 'AAAA' ? a.data : undefined;
}

// Two shards as the controller sends them (one per service, named in hostname order); the later one's
// claim on `reviews` loses, as the controller would never send it.
const TABLE = nameTableFrom({
  'name-table|reviews.default.mesh': {
    table: {
      'reviews.default.mesh': { ips: ['240.240.0.5'], registry: 'vmesh', shortname: 'reviews', namespace: 'default' },
      'reviews.default': { ips: ['240.240.0.5'] },
      reviews: { ips: ['240.240.0.5'] },
      'reviews.default.svc.cluster.local': { ips: ['240.240.0.5'] },
    },
  },
  'name-table|api.payments.example.com': { table: { 'api.payments.example.com': { ips: ['240.240.0.1'] } } },
  'name-table|zeta.example.com': { table: { 'zeta.example.com': { ips: ['240.240.0.9'] }, reviews: { ips: ['240.240.0.9'] } } },
});

function udpAsk(port: number, name: string, type: 'A' | 'AAAA' = 'A'): Promise<packet.DecodedPacket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no answer'));
    }, 3000);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(packet.decode(m));
    });
    s.send(packet.encode({ id: 4242, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ type, name }] }), port, '127.0.0.1');
  });
}

function tcpAsk(port: number, name: string): Promise<packet.Packet> {
  return new Promise((resolve, reject) => {
    const c = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    c.setTimeout(3000, () => reject(new Error('timeout')));
    c.on('connect', () => c.write(packet.streamEncode({ id: 7, type: 'query', questions: [{ type: 'A', name }] })));
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        c.destroy();
        resolve(packet.streamDecode(buf));
      }
    });
    c.on('error', reject);
  });
}

describe('DNS proxy', () => {
  let proxy: DnsProxy;
  let port: number;
  const upstream = createSocket('udp4');
  let upstreamPort = 0;
  const seenUpstream: string[] = [];

  before(async () => {
    // A stand-in for the host's resolver: answers example.org with 198.18.5.5, anything else NXDOMAIN.
    upstream.on('message', (m, r) => {
      const q = packet.decode(m);
      const name = q.questions?.[0]?.name ?? '';
      seenUpstream.push(name);
      const answers: packet.Answer[] = name === 'example.org' ? [{ type: 'A', name, ttl: 60, class: 'IN', data: '198.18.5.5' }] : [];
      upstream.send(
        packet.encode({ id: q.id, type: 'response', flags: name === 'example.org' ? 0 : 3, questions: q.questions, answers }),
        r.port,
        r.address,
      );
    });
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', () => r()));
    upstreamPort = upstream.address().port;
    proxy = new DnsProxy({
      port: 0,
      addresses: ['127.0.0.1'],
      resolv: parseResolvConf('nameserver 127.0.0.1\nsearch corp.example\n'),
      logger: createLogger({ level: 'silent' }),
      upstreamPort,
    });
    proxy.setTable(TABLE);
    port = (await proxy.start()).port;
  });
  after(async () => {
    await proxy.stop();
    upstream.close();
  });

  test('mesh names answer with the VIP over UDP and TCP: short, name.ns, .mesh and the Istio alias', async () => {
    for (const name of [
      'reviews',
      'reviews.default',
      'reviews.default.mesh',
      'reviews.default.svc.cluster.local',
      'api.payments.example.com',
    ]) {
      const r = await udpAsk(port, name);
      assert.equal(firstAddress(r), name.startsWith('api') ? '240.240.0.1' : '240.240.0.5', name);
      assert.equal(r.id, 4242);
    }
    const t = await tcpAsk(port, 'reviews.default.mesh');
    assert.equal(firstAddress(t), '240.240.0.5');
  });

  test('search-domain expansions of mesh names answer too; AAAA for a mesh name is NODATA', async () => {
    const r = await udpAsk(port, 'reviews.corp.example');
    assert.equal(firstAddress(r), '240.240.0.5');
    const six = await udpAsk(port, 'reviews.default.mesh', 'AAAA');
    assert.equal(six.answers?.length ?? 0, 0);
    assert.equal(six.rcode, 'NOERROR');
  });

  test('other names are forwarded to the upstream resolver, errors included', async () => {
    const r = await udpAsk(port, 'example.org');
    assert.equal(firstAddress(r), '198.18.5.5');
    const nx = await udpAsk(port, 'nothing.example.org');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.ok(seenUpstream.includes('example.org'));
    assert.ok(!seenUpstream.includes('reviews'), 'mesh names never reach the upstream');
  });

  test("capture verify's probe name is answered here at once (NXDOMAIN), never forwarded", async () => {
    const r = await udpAsk(port, CAPTURE_PROBE_NAME);
    assert.equal(r.rcode, 'NXDOMAIN');
    assert.equal(r.id, 4242);
    assert.ok(!seenUpstream.includes(CAPTURE_PROBE_NAME), 'the probe must not depend on the upstream');
  });

  test('lookup and resolv.conf parsing', () => {
    assert.deepEqual(lookup(TABLE, 'REVIEWS.default.mesh.', 'A', []), {
      kind: 'answer',
      name: 'reviews.default.mesh',
      ips: ['240.240.0.5'],
    });
    assert.deepEqual(lookup(TABLE, 'ratings', 'A', []), { kind: 'forward' });
    assert.deepEqual(parseResolvConf('# c\nnameserver 10.0.0.2\nnameserver 10.0.0.3 ; x\nsearch a.example b.example\n'), {
      nameservers: ['10.0.0.2', '10.0.0.3'],
      search: ['a.example', 'b.example'],
    });
  });
});
