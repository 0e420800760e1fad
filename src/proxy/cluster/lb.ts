import type { ClusterConfig, SlowStart, UpstreamEndpoint } from '../proxy-config.js';
import type { UpstreamHost } from '../runtime-types.js';

/**
 * Load balancers with Envoy's policies. A balancer keeps per-cluster state (round-robin positions, hash rings)
 * and rebuilds it when the host set it is handed changes (same array, or same keys and weights, keeps it).
 */

export interface BalancerContext {
  /** Consistent-hash key from the route's hash policy (RING_HASH / MAGLEV); without one they pick at random. */
  readonly hashKey?: string;
  /** In-flight requests per host key (LEAST_REQUEST). */
  readonly inflight?: (key: string) => number;
  /** [0, 1); Math.random by default. */
  readonly random?: () => number;
  /**
   * A host's weight now, when it changes over time (slow start); the endpoint's weight otherwise. With it the
   * balancer re-reads the weights on every pick, even for the same array.
   */
  readonly weight?: (h: UpstreamHost) => number;
}

export interface Balancer {
  /** `hosts`: healthy, not ejected, already narrowed to one priority level (see prioritize). */
  pick(hosts: readonly UpstreamHost[], ctx: BalancerContext): UpstreamHost | undefined;
}

// ---- hashing: FNV-1a 64 in two 32-bit halves (no BigInt), folded to 32 bits with murmur3's finaliser ----

const FNV_OFFSET_HI = 0xcbf29ce4;
const FNV_OFFSET_LO = 0x84222325;
const FNV_PRIME_LO = 0x1b3; // the prime is 2^40 + 0x1b3
const TWO_32 = 4294967296;

function fmix32(h0: number): number {
  let h = h0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a 64 of the string's bytes (UTF-16 code units above 0xff as two bytes), folded to an unsigned 32-bit hash. */
export function hash32(s: string, seed = 0): number {
  let hi = FNV_OFFSET_HI;
  let lo = (FNV_OFFSET_LO ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    for (let part = c > 0xff ? 1 : 0; part >= 0; part--) {
      lo = (lo ^ ((c >>> (part * 8)) & 0xff)) >>> 0;
      const t = lo * FNV_PRIME_LO;
      hi = (Math.imul(hi, FNV_PRIME_LO) + Math.imul(lo, 256) + Math.floor(t / TWO_32)) >>> 0;
      lo = t >>> 0;
    }
  }
  return fmix32((hi ^ lo) >>> 0);
}

// ---- host set tracking ----

export function weightOf(h: UpstreamHost): number {
  const w = h.endpoint.weight;
  return w > 0 ? w : 0;
}

/** One second: Envoy's floor for the time a host has been in slow start. */
const SLOW_START_MIN_AGE_MS = 1000;

/**
 * Envoy's slow start weight factor for a host that joined `ageMs` ago: 1 once the window is over, else
 * max(minWeightPercent / 100, timeFactor^(1 / aggression)) with timeFactor = max(age, 1 s) / window.
 */
export function slowStartFactor(ageMs: number, s: SlowStart): number {
  if (!(ageMs < s.windowMs)) return 1;
  const timeFactor = Math.max(ageMs, SLOW_START_MIN_AGE_MS) / s.windowMs;
  return Math.min(1, Math.max(s.minWeightPercent / 100, timeFactor ** (1 / s.aggression)));
}

/** Remembers the last host set by keys and weights, so state survives a caller that builds a new array per pick. */
class HostSet {
  private last: readonly UpstreamHost[] | undefined;
  /** The last update used time-varying weights: the same array may now have other weights. */
  private weighted = false;
  keys: string[] = [];
  weights: number[] = [];
  total = 0;
  equal = true;
  /** Cumulative weights, for weighted random picks. */
  cumulative: Float64Array = new Float64Array(0);

  /** True when the set (keys, order or weights) differs from the last one seen. */
  update(hosts: readonly UpstreamHost[], weight?: (h: UpstreamHost) => number): boolean {
    if (hosts === this.last && weight === undefined && !this.weighted) return false;
    this.last = hosts;
    this.weighted = weight !== undefined;
    const w = weight ?? weightOf;
    const now = weight ? hosts.map(w) : undefined;
    let same = hosts.length === this.keys.length;
    for (let i = 0; same && i < hosts.length; i++) {
      const h = hosts[i] as UpstreamHost;
      same = h.key === this.keys[i] && (now ? now[i] : weightOf(h)) === this.weights[i];
    }
    if (same) return false;
    this.keys = hosts.map((h) => h.key);
    this.weights = now ?? hosts.map(weightOf);
    this.cumulative = new Float64Array(hosts.length);
    let acc = 0;
    this.equal = true;
    for (let i = 0; i < hosts.length; i++) {
      const w = this.weights[i] ?? 0;
      acc += w;
      this.cumulative[i] = acc;
      if (w !== this.weights[0]) this.equal = false;
    }
    this.total = acc;
    return true;
  }

  /** A weighted random index (uniform when weights are equal). */
  randomIndex(r: number): number {
    const n = this.keys.length;
    if (this.equal || this.total <= 0) return Math.min(n - 1, Math.floor(r * n));
    const target = r * this.total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.cumulative[mid] ?? 0) > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

// ---- policies ----

/** Weighted round robin, smooth (nginx's): over any window of `total weight` picks each host gets exactly its weight. */
class RoundRobin implements Balancer {
  private readonly set = new HostSet();
  private current = new Float64Array(0);
  private prevKeys: readonly string[] = [];
  private next = 0;

  pick(hosts: readonly UpstreamHost[], ctx: BalancerContext = {}): UpstreamHost | undefined {
    const n = hosts.length;
    if (n <= 1) return hosts[0];
    if (this.set.update(hosts, ctx.weight)) {
      const old = new Map<string, number>();
      // Keep positions of hosts that stay, so a membership change does not restart the cycle.
      for (let i = 0; i < this.current.length; i++) old.set(this.prevKeys[i] ?? '', this.current[i] ?? 0);
      this.current = new Float64Array(n);
      let sum = 0;
      for (let i = 0; i < n; i++) {
        this.current[i] = old.get(this.set.keys[i] ?? '') ?? 0;
        sum += this.current[i] ?? 0;
      }
      // Smooth WRR keeps the positions summing to zero; spread what the departed hosts held.
      for (let i = 0; i < n; i++) this.current[i] = (this.current[i] ?? 0) - sum / n;
      this.prevKeys = this.set.keys;
    }
    if (this.set.equal) {
      const i = this.next % n;
      this.next = (i + 1) % n;
      return hosts[i];
    }
    let best = -1;
    let bestValue = -Infinity;
    const cur = this.current;
    const w = this.set.weights;
    for (let i = 0; i < n; i++) {
      const v = (cur[i] ?? 0) + (w[i] ?? 0);
      cur[i] = v;
      if (v > bestValue) {
        bestValue = v;
        best = i;
      }
    }
    cur[best] = bestValue - this.set.total;
    return hosts[best];
  }
}

/** Power of two choices: two random hosts (weighted), the one with fewer in-flight requests per unit of weight wins. */
class LeastRequest implements Balancer {
  private readonly set = new HostSet();

  pick(hosts: readonly UpstreamHost[], ctx: BalancerContext): UpstreamHost | undefined {
    const n = hosts.length;
    if (n <= 1) return hosts[0];
    this.set.update(hosts, ctx.weight);
    const random = ctx.random ?? Math.random;
    let i: number;
    let j: number;
    if (this.set.equal) {
      i = Math.min(n - 1, Math.floor(random() * n));
      j = Math.min(n - 2, Math.floor(random() * (n - 1)));
      if (j >= i) j++;
    } else {
      i = this.set.randomIndex(random());
      j = this.set.randomIndex(random());
    }
    const a = hosts[i] as UpstreamHost;
    const b = hosts[j] as UpstreamHost;
    const inflight = ctx.inflight;
    if (!inflight || i === j) return a;
    // Load per unit of configured weight; slow start already thinned the warming host's draws above, so idle
    // hosts get its ramped share (Envoy's proportions) rather than a second discount here.
    const la = (inflight(a.key) + 1) / Math.max(weightOf(a), 1e-9);
    const lb = (inflight(b.key) + 1) / Math.max(weightOf(b), 1e-9);
    return lb < la ? b : a;
  }
}

class RandomPick implements Balancer {
  private readonly set = new HostSet();

  pick(hosts: readonly UpstreamHost[], ctx: BalancerContext): UpstreamHost | undefined {
    if (hosts.length <= 1) return hosts[0];
    this.set.update(hosts);
    return hosts[this.set.randomIndex((ctx.random ?? Math.random)())];
  }
}

/** Hosts by key, so rings and tables do not depend on the order hosts arrive in. */
function sortedIndices(hosts: readonly UpstreamHost[]): number[] {
  return hosts.map((_, i) => i).sort((a, b) => ((hosts[a]?.key ?? '') < (hosts[b]?.key ?? '') ? -1 : 1));
}

const MAX_RING_SIZE = 8 * 1024 * 1024;

/**
 * Ketama-style ring (Envoy's RING_HASH): each host owns points `hash(key_i)` in proportion to its weight, at
 * least `minimumRingSize` in all. The points per unit of weight are rounded up to a power of two, so adding or
 * removing a host rarely changes the other hosts' points: only the keys of the host that left move.
 */
export class RingHash implements Balancer {
  private readonly set = new HostSet();
  private ring = new Uint32Array(0);
  private owners = new Int32Array(0);

  constructor(private readonly minimumRingSize: number) {}

  private build(hosts: readonly UpstreamHost[]): void {
    const order = sortedIndices(hosts).filter((i) => weightOf(hosts[i] as UpstreamHost) > 0);
    const weights = order.map((i) => weightOf(hosts[i] as UpstreamHost));
    const total = weights.reduce((a, b) => a + b, 0);
    const min = Math.min(...weights);
    let perMinWeight = 1;
    while (perMinWeight < Math.ceil((this.minimumRingSize * min) / total)) perMinWeight *= 2;
    let counts = weights.map((w) => Math.max(1, Math.round((perMinWeight * w) / min)));
    const size = counts.reduce((a, b) => a + b, 0);
    if (size > MAX_RING_SIZE) counts = counts.map((c) => Math.max(1, Math.floor((c * MAX_RING_SIZE) / size)));
    const points: number[] = [];
    order.forEach((hostIndex, k) => {
      const key = (hosts[hostIndex] as UpstreamHost).key;
      for (let p = 0; p < (counts[k] ?? 0); p++) points.push(hash32(`${key}_${p}`) * 1048576 + k);
    });
    // hash * 2^20 + owner: one numeric sort orders by hash, ties by host key.
    const packed = Float64Array.from(points).sort();
    this.ring = new Uint32Array(packed.length);
    this.owners = new Int32Array(packed.length);
    packed.forEach((v, i) => {
      this.ring[i] = Math.floor(v / 1048576);
      this.owners[i] = order[v % 1048576] ?? 0;
    });
  }

  pick(hosts: readonly UpstreamHost[], ctx: BalancerContext): UpstreamHost | undefined {
    if (hosts.length <= 1) return hosts[0];
    if (this.set.update(hosts)) this.build(hosts);
    if (ctx.hashKey === undefined || this.ring.length === 0) return hosts[this.set.randomIndex((ctx.random ?? Math.random)())];
    const h = hash32(ctx.hashKey);
    const ring = this.ring;
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ring[mid] ?? 0) < h) lo = mid + 1;
      else hi = mid;
    }
    return hosts[this.owners[lo === ring.length ? 0 : lo] ?? 0];
  }
}

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

function nextPrime(n: number): number {
  let p = n;
  while (!isPrime(p)) p++;
  return p;
}

/** Google's Maglev lookup table (Envoy's MAGLEV, weighted as Envoy does): `tableSize` slots, a prime. */
export class Maglev implements Balancer {
  private readonly set = new HostSet();
  private table = new Int32Array(0);

  private readonly tableSize: number;

  constructor(tableSize: number) {
    // A composite size would let a host's probe sequence cycle without reaching a free slot.
    this.tableSize = nextPrime(Math.max(2, Math.floor(tableSize)));
  }

  private build(hosts: readonly UpstreamHost[]): void {
    const m = this.tableSize;
    const order = sortedIndices(hosts).filter((i) => weightOf(hosts[i] as UpstreamHost) > 0);
    const table = new Int32Array(m).fill(-1);
    if (order.length === 0) {
      this.table = table;
      return;
    }
    const maxWeight = Math.max(...order.map((i) => weightOf(hosts[i] as UpstreamHost)));
    const entries = order.map((i) => {
      const key = (hosts[i] as UpstreamHost).key;
      return {
        host: i,
        pos: hash32(key) % m,
        skip: (hash32(key, 0x9e3779b9) % (m - 1)) + 1,
        weight: weightOf(hosts[i] as UpstreamHost),
        target: 0,
      };
    });
    let filled = 0;
    for (let iteration = 1; filled < m; iteration++) {
      for (const e of entries) {
        if (filled >= m) break;
        if (iteration * e.weight < e.target) continue;
        e.target += maxWeight;
        while (table[e.pos] !== -1) e.pos = (e.pos + e.skip) % m;
        table[e.pos] = e.host;
        e.pos = (e.pos + e.skip) % m;
        filled++;
      }
    }
    this.table = table;
  }

  pick(hosts: readonly UpstreamHost[], ctx: BalancerContext): UpstreamHost | undefined {
    if (hosts.length <= 1) return hosts[0];
    if (this.set.update(hosts)) this.build(hosts);
    if (ctx.hashKey === undefined) return hosts[this.set.randomIndex((ctx.random ?? Math.random)())];
    return hosts[this.table[hash32(ctx.hashKey) % this.tableSize] ?? 0];
  }
}

export const DEFAULT_RING_SIZE = 1024;
export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;

export function createBalancer(cluster: ClusterConfig): Balancer {
  switch (cluster.lb) {
    case 'LEAST_REQUEST':
      return new LeastRequest();
    case 'RANDOM':
      return new RandomPick();
    case 'RING_HASH':
      return new RingHash(cluster.ringSize ?? DEFAULT_RING_SIZE);
    case 'MAGLEV':
      return new Maglev(cluster.ringSize ?? DEFAULT_MAGLEV_TABLE_SIZE);
    default:
      return new RoundRobin();
  }
}

// ---- priorities ----

/** Envoy's default overprovisioning factor: a level at ≥ 1/1.4 ≈ 72% available hosts still takes all its load. */
export const OVERPROVISIONING_FACTOR = 1.4;

/**
 * Envoy's priority load: each level's health is min(100%, 1.4 × available/total); the load goes to level 0 up
 * to its health, the rest spills to the next levels in order (scaled up when all levels together are under
 * 100%). Picks a level by `random` and returns its available hosts; empty when no host is available anywhere.
 * Hosts of one level, all available, come back as the same array (no allocation).
 */
export function prioritize<T extends { readonly endpoint: UpstreamEndpoint }>(
  hosts: readonly T[],
  isAvailable: (h: T) => boolean,
  random: () => number = Math.random,
): readonly T[] {
  let maxPriority = 0;
  let allAvailable = true;
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i] as T;
    if (h.endpoint.priority > maxPriority) maxPriority = h.endpoint.priority;
    if (allAvailable && !isAvailable(h)) allAvailable = false;
  }
  if (maxPriority === 0 && allAvailable) return hosts;
  const totals = new Array<number>(maxPriority + 1).fill(0);
  const available = new Array<number>(maxPriority + 1).fill(0);
  for (const h of hosts) {
    const p = h.endpoint.priority;
    totals[p] = (totals[p] ?? 0) + 1;
    if (isAvailable(h)) available[p] = (available[p] ?? 0) + 1;
  }
  const health = totals.map((t, p) => (t === 0 ? 0 : Math.min(100, (OVERPROVISIONING_FACTOR * 100 * (available[p] ?? 0)) / t)));
  const totalHealth = Math.min(
    100,
    health.reduce((a, b) => a + b, 0),
  );
  if (totalHealth <= 0) return [];
  let remaining = 100;
  const r = random() * 100;
  let acc = 0;
  let chosen = -1;
  for (let p = 0; p <= maxPriority; p++) {
    const load = Math.min(remaining, ((health[p] ?? 0) * 100) / totalHealth);
    remaining -= load;
    acc += load;
    if (load > 0) chosen = p;
    if (r < acc) break;
  }
  return hosts.filter((h) => h.endpoint.priority === chosen && isAvailable(h));
}
