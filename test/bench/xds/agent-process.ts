/**
 * An agent process of the xDS benchmark (forked by run.ts): runs its share of the simulated agents and
 * reports over IPC. It records, never judges: the benchmark compares the times with its own clock.
 */
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import type { DeltaDiscoveryResponseMsg } from '../../../src/xds/messages.js';
import { AGENT_TYPES, type FromAgents, type Marker, type SyncReport, type ToAgents, type WatchResult } from './agent-protocol.js';
import { SimAgent } from './sim-agent.js';

const PROGRESS_EVERY_MS = 2000;
const MAX_ERRORS = 10;

interface Watch {
  readonly id: number;
  readonly markers: readonly Marker[];
  /** agent index * markers + marker index -> ACK time (NaN: not yet). */
  readonly times: Float64Array;
  readonly done: Uint8Array;
  pending: number;
  readonly arrivals: Record<string, number[]>;
  bytes: number;
  readonly elu: EventLoopUtilization;
  readonly cpu: NodeJS.CpuUsage;
}

const send = (m: FromAgents) => process.send?.(m);

let agents: SimAgent[] = [];
/** Agents whose connection slot was given back (synced or failed). */
let released = new Uint8Array(0);
let slots = 0;
let nextToStart = 0;
let syncReported = false;
let watch: Watch | undefined;
let progressTimer: NodeJS.Timeout | undefined;
let startArgs: { addresses: readonly string[]; caPem: Buffer } | undefined;
const errors: string[] = [];

function settled(a: SimAgent): boolean {
  return a.synced || a.failure !== undefined;
}

/** Keeps `concurrency` agents connecting or syncing: the next one starts when one finishes its initial sync. */
function startMore(): void {
  const args = startArgs;
  if (!args) return;
  while (slots > 0 && nextToStart < agents.length) {
    const a = agents[nextToStart++];
    if (!a) break;
    slots--;
    try {
      a.start(args.addresses[a.index % args.addresses.length] ?? '', args.caPem, { response: onResponse, failed: onFailed });
    } catch (e) {
      onFailed(a, (e as Error).message);
    }
  }
}

function release(a: SimAgent): void {
  if (released[a.index]) return;
  released[a.index] = 1;
  slots++;
  startMore();
  maybeReportSync();
}

function onResponse(a: SimAgent, res: DeltaDiscoveryResponseMsg, bytes: number, at: number): void {
  if (a.synced) release(a);
  const w = watch;
  if (!w) return;
  const typeUrl = res.type_url ?? '';
  const list = w.arrivals[typeUrl];
  if (list) list.push(at);
  else w.arrivals[typeUrl] = [at];
  w.bytes += bytes;
  if (w.done[a.index]) return;
  const base = a.index * w.markers.length;
  let complete = true;
  w.markers.forEach((m, j) => {
    if (!Number.isNaN(w.times[base + j] ?? 0)) return;
    if (m.typeUrl === typeUrl && (m.name === '*' || (res.resources ?? []).some((r) => r.name === m.name))) w.times[base + j] = at;
    else complete = false;
  });
  if (complete) finishAgent(w, a.index);
}

function onFailed(a: SimAgent, message: string): void {
  if (errors.length < MAX_ERRORS) errors.push(`${a.creds.id}: ${message}`);
  release(a);
  if (watch && !watch.done[a.index]) finishAgent(watch, a.index);
}

function finishAgent(w: Watch, index: number): void {
  w.done[index] = 1;
  w.pending--;
  if (w.pending === 0) send({ ev: 'watch-done', watchId: w.id });
}

function maybeReportSync(): void {
  if (syncReported || !agents.every(settled)) return;
  syncReported = true;
  if (progressTimer) clearInterval(progressTimer);
  const ok = agents.filter((a) => a.synced && a.failure === undefined);
  const perType = AGENT_TYPES.map((_, i) => ok.map((a) => a.upserts[i] ?? 0));
  const report: SyncReport = {
    agents: agents.length,
    synced: ok.length,
    failed: agents.length - ok.length,
    errors,
    syncedAt: ok.map((a) => a.syncedAt),
    startedAt: agents.map((a) => a.startedAt),
    resourcesPerType: {
      min: perType.map((l) => (l.length ? Math.min(...l) : 0)),
      max: perType.map((l) => (l.length ? Math.max(...l) : 0)),
    },
    bytes: agents.reduce((s, a) => s + a.bytes, 0),
    responses: agents.reduce((s, a) => s + a.responses.reduce((x, y) => x + y, 0), 0),
  };
  send({ ev: 'synced', report });
}

function handle(m: ToAgents): void {
  switch (m.cmd) {
    case 'start': {
      agents = m.agents.map((c, i) => new SimAgent(i, c));
      released = new Uint8Array(agents.length);
      startArgs = { addresses: m.addresses, caPem: Buffer.from(m.caPem) };
      slots = m.concurrency;
      progressTimer = setInterval(() => {
        const synced = agents.filter((a) => a.synced).length;
        const failed = agents.filter((a) => a.failure !== undefined).length;
        send({ ev: 'progress', synced, failed, open: nextToStart });
      }, PROGRESS_EVERY_MS);
      startMore();
      maybeReportSync();
      return;
    }
    case 'watch': {
      const n = agents.length * m.markers.length;
      const w: Watch = {
        id: m.watchId,
        markers: m.markers,
        times: new Float64Array(n).fill(Number.NaN),
        done: new Uint8Array(agents.length),
        pending: agents.length,
        arrivals: {},
        bytes: 0,
        elu: performance.eventLoopUtilization(),
        cpu: process.cpuUsage(),
      };
      watch = w;
      // Failed agents will never see anything: they are not waited for.
      for (const a of agents) if (a.failure !== undefined) finishAgent(w, a.index);
      send({ ev: 'watching', watchId: m.watchId });
      return;
    }
    case 'collect': {
      const w = watch;
      if (!w || w.id !== m.watchId) {
        send({ ev: 'fatal', message: `collect ${m.watchId}: no such watch` });
        return;
      }
      watch = undefined;
      const k = w.markers.length;
      const cpu = process.cpuUsage(w.cpu);
      const result: WatchResult = {
        watchId: w.id,
        times: agents.map((_, i) => Array.from(w.times.subarray(i * k, i * k + k), (t) => (Number.isNaN(t) ? null : t))),
        arrivals: w.arrivals,
        bytes: w.bytes,
        elu: performance.eventLoopUtilization(w.elu).utilization,
        cpuSeconds: (cpu.user + cpu.system) / 1e6,
        failedStreams: agents.filter((a) => a.failure !== undefined).length,
      };
      send({ ev: 'watch-result', result });
      return;
    }
    case 'stop': {
      if (progressTimer) clearInterval(progressTimer);
      for (const a of agents) a.close();
      // Give grpc a moment to send the cancellations, then leave even if a handle lingers.
      setTimeout(() => process.exit(0), 200).unref();
      process.disconnect?.();
      return;
    }
  }
}

process.on('message', (m: ToAgents) => {
  try {
    handle(m);
  } catch (e) {
    send({ ev: 'fatal', message: `agent process: ${(e as Error).stack ?? String(e)}` });
  }
});
// The benchmark gone means nothing left to report to.
process.on('disconnect', () => setTimeout(() => process.exit(0), 200).unref());
