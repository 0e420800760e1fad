import { workloadRegistered } from '../../../src/api/http/workloads.js';
import type { ApiClient } from '../../../src/cli/api-client.js';
import { typeLabel } from '../../../src/xds/type-urls.js';
import type { AgentFleet } from './agent-fleet.js';
import type { Marker } from './agent-protocol.js';
import type { ProcSampler } from './controller-process.js';
import { sleep } from './pool.js';
import { now } from './sim-agent.js';
import { round, type Summary, summarize } from './stats.js';

/** The controller counts as quiet below this share of a core over this window. */
const QUIET = { windowMs: 500, maxBusy: 0.1 };
const QUIET_MAX_WAIT_MS = 60_000;

export interface ChangeResult {
  readonly kind: 'endpoint' | 'service';
  /** Which controller's API made the change (A, or B with --controllers 2). */
  readonly via?: 'A' | 'B';
  readonly index: number;
  readonly service: string;
  /** When the POST was sent (ms since the epoch): to cut a controller CPU profile to the change. */
  readonly startedAt: number;
  /** Whether the controller was quiet before the POST (false: it was still busy after a minute of waiting). */
  readonly quietBefore: boolean;
  /** From the POST returning until the controller was quiet again (its work for the change done), null: never quiet. */
  readonly busyAfterPostMs: number | null;
  /** How long the POST took (it returns once the registration is stored). */
  readonly postMs: number;
  /** max over agents of (ACK of the matching response) - (POST returned); null: not every agent within the timeout. */
  readonly convergenceMs: number | null;
  readonly agents: number;
  readonly converged: number;
  readonly failedStreams: number;
  /** Per agent: when it had every marker, ms after the POST returned. */
  readonly perAgentMs?: Summary;
  /** Per marker type: ms after the POST returned, over the agents that saw it. */
  readonly perTypeMs: Record<string, { p50: number; max: number; agents: number }>;
  /** Responses the agents received from the POST to the end of the slot, by type. */
  readonly responsesByType: Record<string, number>;
  /** Responses received between the POST and convergence, per second of that window. */
  readonly pushesPerSecond: number | null;
  readonly bytesReceived: number;
  /** Controller CPU (utime+stime) from just before the POST until it was quiet again: all the change's work. */
  readonly controllerCpuSeconds: number;
  /** Wall time of that CPU measurement. */
  readonly slotMs: number;
  /** The busiest agent process's event-loop utilisation during the slot (near 1: the harness was the bottleneck). */
  readonly agentElu: number;
}

/**
 * One measured change: wait for a quiet controller, arm the agents' markers, POST, wait until every agent ACKed
 * a response carrying every marker (bounded by `timeoutMs`) and the controller is quiet again, keep the slot
 * open until `spacingMs` after its start, then collect.
 */
export async function measureChange(opts: {
  kind: 'endpoint' | 'service';
  index: number;
  service: string;
  body: Record<string, unknown>;
  markers: Marker[];
  api: ApiClient;
  via?: 'A' | 'B';
  fleet: AgentFleet;
  sampler: ProcSampler;
  timeoutMs: number;
  spacingMs: number;
}): Promise<ChangeResult> {
  const { fleet, markers, sampler } = opts;
  const quietBefore = await sampler.waitIdle({ ...QUIET, deadline: Date.now() + QUIET_MAX_WAIT_MS });
  const watchId = await fleet.watch(markers, Date.now() + 30_000);
  const cpuBefore = sampler.sample()?.cpuSeconds ?? Number.NaN;
  const startedAt = Date.now();
  const tStart = now();
  await opts.api.call(workloadRegistered, 'POST', '/v1/workloads', opts.body);
  const t0 = now();
  await fleet.waitWatch(watchId, Date.now() + opts.timeoutMs);
  const tDone = now();
  const quietAfter = await sampler.waitIdle({ ...QUIET, deadline: Date.now() + QUIET_MAX_WAIT_MS });
  // The quiet window itself is not work: the change's work ended where it began, though not before it converged.
  const tQuiet = Math.max(tDone, now() - (quietAfter ? QUIET.windowMs : 0));
  const cpuAfter = sampler.sample()?.cpuSeconds ?? Number.NaN;
  await sleep(tStart + opts.spacingMs - now());
  const r = await fleet.collect(watchId, Date.now() + 30_000);
  const slotMs = tQuiet - tStart;

  const alive = r.times.length - r.failedStreams;
  const perAgent: number[] = [];
  for (const row of r.times) {
    if (row.every((t) => t !== null)) perAgent.push(Math.max(...(row as number[])) - t0);
  }
  const allConverged = perAgent.length >= alive && alive > 0;
  const convergenceMs = allConverged ? Math.max(...perAgent) : null;
  const perTypeMs: ChangeResult['perTypeMs'] = {};
  markers.forEach((m, j) => {
    const ts = r.times.flatMap((row) => (row[j] == null ? [] : [(row[j] as number) - t0]));
    const s = summarize(ts);
    perTypeMs[typeLabel(m.typeUrl)] = { p50: round(s?.p50 ?? Number.NaN), max: round(s?.max ?? Number.NaN), agents: ts.length };
  });
  const responsesByType: Record<string, number> = {};
  let inWindow = 0;
  for (const [typeUrl, list] of Object.entries(r.arrivals)) {
    responsesByType[typeLabel(typeUrl)] = list.length;
    if (convergenceMs !== null) inWindow += list.filter((t) => t >= tStart && t <= t0 + convergenceMs).length;
  }
  return {
    kind: opts.kind,
    ...(opts.via ? { via: opts.via } : {}),
    index: opts.index,
    service: opts.service,
    startedAt,
    quietBefore,
    busyAfterPostMs: quietAfter ? round(Math.max(0, tQuiet - t0), 0) : null,
    postMs: round(t0 - tStart),
    convergenceMs: convergenceMs === null ? null : round(convergenceMs),
    agents: r.times.length,
    converged: perAgent.length,
    failedStreams: r.failedStreams,
    ...(perAgent.length > 0 ? { perAgentMs: roundSummary(summarize(perAgent)) } : {}),
    perTypeMs,
    responsesByType,
    pushesPerSecond: convergenceMs && convergenceMs > 0 ? round(inWindow / (convergenceMs / 1000), 0) : null,
    bytesReceived: r.bytes,
    controllerCpuSeconds: round(cpuAfter - cpuBefore, 2),
    slotMs: round(slotMs, 0),
    agentElu: round(r.elu, 2),
  };
}

function roundSummary(s: Summary | undefined): Summary | undefined {
  if (!s) return undefined;
  return { n: s.n, min: round(s.min), p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), max: round(s.max), mean: round(s.mean) };
}
