// The demo's client: `traffic.mjs URL COUNT CONCURRENCY` sends COUNT GETs with CONCURRENCY in flight. Run as a
// registered workload's uid on a captured host, it calls productpage by name like any app. It walks each answer's call
// tree and prints one JSON line: the reviews versions that answered, the identities each server saw per hop, failures
// and latency.
import { getJson } from './http.mjs';

const [url, countArg = '200', concurrencyArg = '8'] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Math.min(Number(concurrencyArg), count);
const versions = {};
const hops = new Map();
const failures = {};
const latencies = [];
let ok = 0;

const label = (node) => (node.version ? `${node.app} ${node.version}` : node.app);

/** Records one answered call and its own calls; false when it or anything below it failed. */
function walk(from, name, result) {
  if (result.error !== undefined || result.status !== 200) {
    const why = `${from} → ${name}: ${result.error ?? `HTTP ${result.status}`}`;
    failures[why] = (failures[why] ?? 0) + 1;
    return false;
  }
  const node = result.body;
  const to = label(node);
  const key = JSON.stringify([from, to, node.peer?.uri ?? null, node.peer?.by ?? null]);
  hops.set(key, (hops.get(key) ?? 0) + 1);
  if (node.app === 'reviews') versions[node.version] = (versions[node.version] ?? 0) + 1;
  let good = true;
  for (const [callee, r] of Object.entries(node.calls ?? {})) good = walk(to, callee, r) && good;
  return good;
}

let next = 0;
async function worker() {
  while (next < count) {
    next++;
    const t = performance.now();
    const r = await getJson(url, 20_000);
    latencies.push(performance.now() - t);
    if (walk('client', new URL(url).hostname, r)) ok++;
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
latencies.sort((a, b) => a - b);
const pct = (p) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0);
console.log(
  JSON.stringify({
    requests: count,
    ok,
    versions,
    hops: [...hops].map(([k, n]) => {
      const [from, to, uri, by] = JSON.parse(k);
      return { from, to, uri, by, count: n };
    }),
    failures,
    p50: pct(50),
    p99: pct(99),
  }),
);
process.exit(0);
