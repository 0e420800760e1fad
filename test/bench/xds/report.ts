import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChangeResult } from './changes.js';
import type { BenchOptions } from './options.js';
import { mb, round, type Summary, summarize } from './stats.js';

/** The targets this benchmark reports against (istiod: 1 vCPU and 1.5 GB for 1000 services / 2000 sidecars). */
/** Issue 18's goals at 2000 agents / 1000 services. */
export const TARGETS = Object.freeze({ p99EndpointMs: 300, p99NewServiceMs: 1000, controllerRssBytes: 400e6, initialSyncS: 15 });

export interface SyncResult {
  /** From the first stream opened to the last agent holding all five types; null: not within the timeout. */
  readonly seconds: number | null;
  readonly agents: number;
  readonly synced: number;
  readonly failed: number;
  readonly errors: string[];
  /** Per agent, from its stream opening to its last initial response. */
  readonly perAgentMs?: Summary;
  readonly resourcesPerType: Record<string, { min: number; max: number }>;
  readonly megabytesReceived: number;
  readonly responses: number;
  readonly controllerCpuSeconds: number;
  /** Nodes that GET /v1/xds/status shows SYNCED on all five types after the sync. */
  readonly controllerSaysSynced: number | null;
}

export interface BenchResult {
  readonly benchmark: 'xds';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly command: string;
  readonly options: BenchOptions;
  readonly machine: { cpus: number; cpuModel: string; memoryBytes: number; node: string; platform: string };
  readonly setup: { seconds: number; registerS: number; modelS: number; tokensS: number; joinS: number; controllerCpuSeconds: number };
  readonly initialSync: SyncResult;
  readonly changes: ChangeResult[];
  /** New services added one at a time; each changes every type. */
  readonly newServices: ChangeResult[];
  readonly newServiceSummary: BenchResult['summary'];
  /**
   * With --controllers 2: the second controller (B), which shares the Consul KV store; agents alternate between
   * A and B, and changes between their APIs (`via` of each change). `controller` is A.
   */
  readonly controllerB?: {
    readonly rssIdleAfterSyncMB: number;
    readonly rssPeakMB: number;
    readonly cpuSecondsTotal: number;
    readonly exit: string;
  };
  readonly controller: {
    readonly rssAfterSetupMB: number;
    readonly rssIdleAfterSyncMB: number;
    readonly rssPeakDuringSyncMB: number;
    readonly rssPeakDuringChangesMB: number;
    /** VmHWM at the end: the highest RSS of the whole run. */
    readonly rssPeakMB: number;
    readonly cpuSecondsTotal: number;
    readonly exit: string;
    readonly cpuProfile?: string;
  };
  readonly summary: {
    readonly convergenceMs: { n: number; timedOut: number; p50: number; p99: number; max: number } | null;
    readonly pushesPerSecond: { p50: number; max: number } | null;
    readonly controllerCpuSecondsPerChange: { p50: number; max: number } | null;
    /** Controller CPU over the change slots / their wall time (1.0 = one core busy). */
    readonly controllerCoresDuringChanges: number | null;
    readonly agentEluMax: number | null;
  };
  readonly targets: Array<{ name: string; target: string; measured: string; met: boolean }>;
  /** Wall-clock boundaries (ms since the epoch), e.g. to cut a controller CPU profile to one phase. */
  readonly phases: Record<
    'setupStart' | 'syncStart' | 'syncEnd' | 'changesStart' | 'changesEnd' | 'controllerStop' | 'controllerExited',
    number
  >;
  readonly notes: string[];
}

/** p50/p99/max over the endpoint changes; a change that timed out counts as its timeout (a lower bound). */
export function summarizeChanges(changes: readonly ChangeResult[], timeoutMs: number): BenchResult['summary'] {
  const conv = summarize(changes.map((c) => c.convergenceMs ?? timeoutMs));
  const pushes = summarize(changes.flatMap((c) => (c.pushesPerSecond === null ? [] : [c.pushesPerSecond])));
  const cpu = summarize(changes.map((c) => c.controllerCpuSeconds));
  const slotS = changes.reduce((s, c) => s + c.slotMs, 0) / 1000;
  const cpuS = changes.reduce((s, c) => s + c.controllerCpuSeconds, 0);
  return {
    convergenceMs: conv
      ? { n: conv.n, timedOut: changes.filter((c) => c.convergenceMs === null).length, p50: conv.p50, p99: conv.p99, max: conv.max }
      : null,
    pushesPerSecond: pushes ? { p50: pushes.p50, max: pushes.max } : null,
    controllerCpuSecondsPerChange: cpu ? { p50: round(cpu.p50, 2), max: round(cpu.max, 2) } : null,
    controllerCoresDuringChanges: slotS > 0 ? round(cpuS / slotS, 2) : null,
    agentEluMax: changes.length ? Math.max(...changes.map((c) => c.agentElu)) : null,
  };
}

export function checkTargets(r: Omit<BenchResult, 'targets'>): BenchResult['targets'] {
  const out: BenchResult['targets'] = [];
  const c = r.summary.convergenceMs;
  out.push({
    name: 'p99 convergence (endpoint change)',
    target: `<= ${TARGETS.p99EndpointMs} ms`,
    measured: c ? `${c.timedOut > 0 ? '>= ' : ''}${c.p99} ms` : 'not measured',
    met: !!c && c.timedOut === 0 && c.p99 <= TARGETS.p99EndpointMs,
  });
  const ns = r.newServiceSummary.convergenceMs;
  out.push({
    name: `p99 convergence (new service, ${ns?.n ?? 0} added)`,
    target: `<= ${TARGETS.p99NewServiceMs} ms`,
    measured: ns ? `${ns.timedOut > 0 ? '>= ' : ''}${ns.p99} ms` : 'not measured',
    met: !!ns && ns.timedOut === 0 && ns.p99 <= TARGETS.p99NewServiceMs,
  });
  const sync = r.initialSync.seconds;
  out.push({
    name: 'initial sync of every agent',
    target: `<= ${TARGETS.initialSyncS} s`,
    measured: sync === null ? 'timed out' : `${sync} s`,
    met: sync !== null && sync <= TARGETS.initialSyncS,
  });
  out.push({
    name: 'controller peak RSS (VmHWM, whole run)',
    target: `<= ${mb(TARGETS.controllerRssBytes)} MB`,
    measured: `${r.controller.rssPeakMB} MB`,
    met: r.controller.rssPeakMB * 1e6 <= TARGETS.controllerRssBytes,
  });
  return out;
}

const pad = (s: string, n: number) => s.padEnd(n);
const ms = (v: number | null | undefined) => (v === null || v === undefined || Number.isNaN(v) ? '-' : `${v} ms`);

/** The human-readable table. */
export function formatTable(r: BenchResult): string {
  const o = r.options;
  const lines: string[] = [];
  const row = (k: string, v: string) => lines.push(`${pad(k, 36)}${v}`);
  lines.push('');
  lines.push(
    `vmesh xDS scale benchmark: ${o.agents} agents, ${o.services} services, ${o.changes} endpoint changes` +
      `${o.sidecarEgress > 0 ? `, every agent scoped by a Sidecar to ${o.sidecarEgress} services` : ''} ` +
      `(${r.machine.cpus} cores, ${round(r.machine.memoryBytes / 2 ** 30, 0)} GiB, node ${r.machine.node})`,
  );
  lines.push('-'.repeat(100));
  const s = r.setup;
  row('setup', `${s.seconds} s (register ${s.registerS} s, model ${s.modelS} s, tokens ${s.tokensS} s, joins ${s.joinS} s)`);
  const i = r.initialSync;
  row(
    'initial full sync (all ACKed)',
    `${i.seconds === null ? 'TIMED OUT' : `${i.seconds} s`}: ${i.synced}/${i.agents} agents synced, ${i.failed} failed, ` +
      `${i.megabytesReceived} MB in ${i.responses} responses, controller CPU ${i.controllerCpuSeconds} s`,
  );
  if (i.perAgentMs)
    row('  per agent (open -> synced)', `p50 ${ms(i.perAgentMs.p50)}, p99 ${ms(i.perAgentMs.p99)}, max ${ms(i.perAgentMs.max)}`);
  row(
    '  resources per agent',
    Object.entries(i.resourcesPerType)
      .map(([t, v]) => `${t} ${v.min === v.max ? v.min : `${v.min}..${v.max}`}`)
      .join(', '),
  );
  row('  controller says SYNCED (5 types)', i.controllerSaysSynced === null ? '-' : `${i.controllerSaysSynced}/${i.agents}`);
  for (const e of i.errors.slice(0, 3)) row('  stream error', e);
  lines.push('');
  lines.push(
    `${pad('change', 14)}${pad('service', 10)}${pad('POST', 10)}${pad('converged', 14)}${pad('agents', 12)}` +
      `${pad('pushes/s', 10)}${pad('ctl CPU', 10)}${pad('ctl busy', 11)}${pad('agent ELU', 10)}responses`,
  );
  for (const c of [...r.changes, ...r.newServices]) {
    lines.push(
      `${pad(c.kind === 'endpoint' ? `endpoint #${c.index}` : `new svc #${c.index}`, 14)}${pad(c.service, 10)}${pad(ms(c.postMs), 10)}` +
        `${pad(c.convergenceMs === null ? 'TIMEOUT' : ms(c.convergenceMs), 14)}${pad(`${c.converged}/${c.agents}`, 12)}` +
        `${pad(String(c.pushesPerSecond ?? '-'), 10)}${pad(`${c.controllerCpuSeconds} s`, 10)}` +
        `${pad(c.busyAfterPostMs === null ? 'never quiet' : ms(c.busyAfterPostMs), 11)}${pad(String(c.agentElu), 10)}` +
        Object.entries(c.responsesByType)
          .map(([t, n]) => `${t} ${n}`)
          .join(', '),
    );
  }
  lines.push(
    '(converged: POST returned -> last agent ACKed; ctl CPU: controller CPU from the POST until quiet again; ' +
      'ctl busy: POST returned -> controller quiet; agent ELU: busiest agent process)',
  );
  const perType = new Map<string, number[]>();
  for (const c of r.newServices) {
    for (const [t, v] of Object.entries(c.perTypeMs)) perType.set(t, [...(perType.get(t) ?? []), v.max]);
  }
  if (perType.size > 0) {
    row('new services, per type (max of each)', [...perType].map(([t, v]) => `${t} ${v.join('/')} ms`).join(', '));
  }
  const bytes = (cs: readonly ChangeResult[]) => cs.map((c) => `${round(c.bytesReceived / 1e6, 2)}`).join('/');
  row('MB sent to the fleet per change', `endpoint ${bytes(r.changes)}; new service ${bytes(r.newServices)}`);
  lines.push('');
  const m = r.summary;
  row(
    'convergence, endpoint changes',
    m.convergenceMs
      ? `p50 ${m.convergenceMs.p50} ms, p99 ${m.convergenceMs.p99} ms, max ${m.convergenceMs.max} ms ` +
          `(${m.convergenceMs.n} changes, ${m.convergenceMs.timedOut} timed out)`
      : '-',
  );
  const n = r.newServiceSummary.convergenceMs;
  row(
    'convergence, new services',
    n ? `p50 ${n.p50} ms, p99 ${n.p99} ms, max ${n.max} ms (${n.n} services, ${n.timedOut} timed out)` : '-',
  );
  row('pushes/s during convergence', m.pushesPerSecond ? `p50 ${m.pushesPerSecond.p50}, max ${m.pushesPerSecond.max}` : '-');
  row(
    'controller CPU per change',
    m.controllerCpuSecondsPerChange
      ? `p50 ${m.controllerCpuSecondsPerChange.p50} s, max ${m.controllerCpuSecondsPerChange.max} s ` +
          `(${m.controllerCoresDuringChanges ?? '-'} cores busy over the change slots)`
      : '-',
  );
  const c = r.controller;
  row(
    'controller RSS',
    `after setup ${c.rssAfterSetupMB} MB, idle after sync ${c.rssIdleAfterSyncMB} MB, peak in sync ${c.rssPeakDuringSyncMB} MB, ` +
      `peak in changes ${c.rssPeakDuringChangesMB} MB, VmHWM ${c.rssPeakMB} MB`,
  );
  row('controller CPU, whole run', `${c.cpuSecondsTotal} s`);
  const b = r.controllerB;
  if (b) {
    row(
      'controller B (shared Consul store)',
      `RSS idle after sync ${b.rssIdleAfterSyncMB} MB, VmHWM ${b.rssPeakMB} MB, CPU ${b.cpuSecondsTotal} s`,
    );
    row('changes made through', [...r.changes, ...r.newServices].map((x) => x.via ?? 'A').join(' '));
  }
  if (c.cpuProfile) row('controller CPU profile', c.cpuProfile);
  lines.push('');
  for (const t of r.targets) {
    lines.push(`${t.met ? 'target met    ' : 'TARGET MISSED '} ${t.name}: ${t.measured} (target ${t.target})`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

/** Writes the JSON next to the other results (test/bench/results/ is git-ignored); returns its path. */
export async function writeResult(r: BenchResult, resultsDir: string): Promise<string> {
  await mkdir(resultsDir, { recursive: true });
  const file = join(resultsDir, `xds-${r.startedAt.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(r, null, 2)}\n`);
  return file;
}
