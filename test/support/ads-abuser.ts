/**
 * A hostile ADS client, as its own process so that its work (encoding megabytes of requests) does not count
 * against the event loop of the controller under test. Usage: ads-abuser.ts PORT STREAMS SEED MAX_MESSAGE_BYTES.
 * Opens STREAMS plaintext streams (a new connection every 16), writes up to 4 generated requests on each, and
 * prints one JSON line: how the streams ended, and any that broke the rules (multi-line or UNKNOWN statuses).
 */
import * as grpc from '@grpc/grpc-js';
import { adsServiceDefinition } from '../../src/xds/protos.js';
import { pool, type Rng, rng } from './abuse.js';

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const [port, streams, seed, maxMessage] = process.argv.slice(2).map(Number) as [number, number, number, number];

function request(r: Rng, mode: 'sotw' | 'delta'): { raw: boolean; msg: unknown } {
  const k = r.int(0, 7);
  if (k === 0) return { raw: true, msg: r.bytes(r.size(256 * 1024)) }; // not a DiscoveryRequest, or a cut one
  const node = r.pick([
    { id: `p-${r.int(0, 5)}` },
    { id: '' },
    null,
    { id: r.text(r.size(100_000)) },
    { id: 'x', metadata: { fields: {} } },
  ]);
  const prefix = r.text(r.int(0, 40));
  const names = Array.from({ length: r.pick([0, 1, 10, r.int(0, 50_000)]) }, (_, i) => `${prefix}${i}`);
  const typeUrl = r.pick([CDS, '', r.text(r.int(0, 300)), 'type.googleapis.com/envoy.config.listener.v3.Listener']);
  if (mode === 'sotw') {
    return {
      raw: false,
      msg: {
        node,
        type_url: typeUrl,
        resource_names: names,
        version_info: r.text(r.int(0, 100)),
        response_nonce: r.pick(['', '1', r.text(r.int(0, 100))]),
        ...(k === 1 ? { error_detail: { code: 3, message: r.text(r.size(maxMessage)) } } : {}),
      },
    };
  }
  return {
    raw: false,
    msg: {
      node,
      type_url: typeUrl,
      resource_names_subscribe: names,
      resource_names_unsubscribe: k === 2 ? names : [],
      initial_resource_versions: k === 3 ? Object.fromEntries(names.slice(0, 5000).map((n) => [n, prefix])) : {},
      response_nonce: r.pick(['', '1', r.text(r.int(0, 50))]),
    },
  };
}

const r = rng(seed);
const statuses: Record<string, number> = {};
const broken: string[] = [];
let answered = 0;
let conn: grpc.Client | undefined;
const conns: grpc.Client[] = [];
await pool(streams, 8, async (i) => {
  if (i % 16 === 0 || !conn) {
    conn = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    conns.push(conn);
  }
  const mode = i % 2 ? 'sotw' : 'delta';
  const first = request(r, mode);
  const m = adsServiceDefinition()[mode === 'sotw' ? 'StreamAggregatedResources' : 'DeltaAggregatedResources'];
  const call = conn.makeBidiStreamRequest<unknown, unknown>(
    m.path,
    first.raw ? (b: unknown) => b as Buffer : (m.requestSerialize as (v: unknown) => Buffer),
    (b: Buffer) => b,
  );
  let got = 0;
  call.on('data', () => got++);
  call.on('error', () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  for (let k = 0; k < 4; k++) {
    const q = k === 0 ? first : request(r, mode);
    if (q.raw === first.raw) call.write(q.msg);
  }
  const st = await Promise.race([status, new Promise<undefined>((res) => setTimeout(res, 300))]);
  if (st) {
    const name = grpc.status[st.code] ?? String(st.code);
    statuses[name] = (statuses[name] ?? 0) + 1;
    if (st.code === grpc.status.UNKNOWN || st.details.includes('\n')) broken.push(`${name}: ${st.details.slice(0, 200)}`);
  } else {
    if (got > 0) answered++;
    call.cancel();
  }
});
for (const c of conns) c.close();
console.log(JSON.stringify({ statuses, answered, broken }));
