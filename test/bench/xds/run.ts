/**
 * xDS scale benchmark (a measurement, not a test): N simulated agents against one controller subprocess with
 * M services. Measures how long a registration takes to reach (be ACKed by) every agent, pushes per second,
 * and the controller's RSS and CPU from /proc. Prints a table; writes test/bench/results/xds-<timestamp>.json.
 *
 *   npm run bench:xds -- --agents 50 --services 50      a smoke run of a few seconds
 *   npm run bench:xds                                    2000 agents, 1000 services (minutes)
 */
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { applyResult } from '../../../src/api/http/config.js';
import { proxyStatusList } from '../../../src/api/http/xds.js';
import { ApiClient } from '../../../src/cli/api-client.js';
import { ErrorCode, formatError, isVmeshError } from '../../../src/lib/errors.js';
import { nameTableShardName } from '../../../src/xds/translate/name-table.js';
import { outboundRouteName } from '../../../src/xds/translate/names.js';
import { CDS, EDS, LDS, NDS, RDS, typeLabel } from '../../../src/xds/type-urls.js';
import { type FakeConsul, startFakeConsul } from '../../support/fake-consul.js';
import { AgentFleet } from './agent-fleet.js';
import { AGENT_TYPES, type SyncReport } from './agent-protocol.js';
import { type ChangeResult, measureChange } from './changes.js';
import { type ControllerProcess, ProcSampler, REPO_ROOT, startControllerProcess } from './controller-process.js';
import { type BenchOptions, parseOptions, USAGE } from './options.js';
import { sleep } from './pool.js';
import { type BenchResult, checkTargets, formatTable, type SyncResult, summarizeChanges, writeResult } from './report.js';
import { benchAddress, clusterName, NAMESPACE, PORT, serviceName, setupMesh, workload } from './setup.js';
import { now } from './sim-agent.js';
import { mb, round, summarize } from './stats.js';

const RESULTS_DIR = join(REPO_ROOT, 'test', 'bench', 'results');
const QUIET_AFTER_SYNC_MS = 2000;

const log = (msg: string) => process.stderr.write(`[bench:xds ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function syncResult(report: SyncReport | undefined, startedAt: number, cpuSeconds: number, controllerSynced: number | null): SyncResult {
  if (!report) {
    return {
      seconds: null,
      agents: 0,
      synced: 0,
      failed: 0,
      errors: ['initial sync did not finish within --sync-timeout'],
      resourcesPerType: {},
      megabytesReceived: 0,
      responses: 0,
      controllerCpuSeconds: round(cpuSeconds, 1),
      controllerSaysSynced: controllerSynced,
    };
  }
  const perAgent = report.syncedAt.map((t, i) => t - (report.startedAt[i] ?? t));
  const s = summarize(perAgent);
  return {
    seconds: report.syncedAt.length ? round((Math.max(...report.syncedAt) - startedAt) / 1000, 2) : null,
    agents: report.agents,
    synced: report.synced,
    failed: report.failed,
    errors: report.errors,
    ...(s ? { perAgentMs: { ...s, p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), max: round(s.max), mean: round(s.mean) } } : {}),
    resourcesPerType: Object.fromEntries(
      AGENT_TYPES.map((t, i) => [typeLabel(t), { min: report.resourcesPerType.min[i] ?? 0, max: report.resourcesPerType.max[i] ?? 0 }]),
    ),
    megabytesReceived: mb(report.bytes),
    responses: report.responses,
    controllerCpuSeconds: round(cpuSeconds, 1),
    controllerSaysSynced: controllerSynced,
  };
}

/** Nodes the controller itself reports SYNCED on all five types (its view of the ACKs). */
async function controllerSynced(api: ApiClient): Promise<number | null> {
  try {
    const rows = await api.call(proxyStatusList, 'GET', '/v1/xds/status');
    const types = AGENT_TYPES.map(typeLabel);
    return rows.filter((r) => r.node.startsWith('bench-') && r.connected && types.every((t) => r.types[t]?.state === 'SYNCED')).length;
  } catch (e) {
    log(`GET /v1/xds/status failed: ${formatError(e)}`);
    return null;
  }
}

async function run(opts: BenchOptions): Promise<BenchResult> {
  const startedAt = new Date();
  const notes: string[] = [];
  const dataDir = await mkdtemp(join(tmpdir(), 'vmesh-bench-xds-'));
  const dataDirB = join(dataDir, 'controller-b');
  let controller: ControllerProcess | undefined;
  let controllerB: ControllerProcess | undefined;
  let samplerB: ProcSampler | undefined;
  let consul: FakeConsul | undefined;
  let fleet: AgentFleet | undefined;
  let sampler: ProcSampler | undefined;
  try {
    // Two controllers share state the way a production pair does: --store consul (here the tests' Consul KV).
    let storeArgs: string[] = [];
    if (opts.controllers === 2) {
      consul = await startFakeConsul({ host: '127.0.0.1', consulService: false });
      storeArgs = ['--store', 'consul', '--consul', consul.url, '--consul-wait', '5'];
      log(`consul (test KV) at ${consul.url}`);
    }
    log(`controller: starting (data dir ${dataDir})`);
    controller = await startControllerProcess({
      dataDir,
      ...(opts.cpuProfDir ? { cpuProfDir: opts.cpuProfDir } : {}),
      nodeArgs: opts.nodeArgs,
      args: storeArgs,
      timeoutMs: 60_000,
    });
    if (opts.controllers === 2) {
      // B starts once A has put the CA and the admin token into the store; it takes them from there.
      await mkdir(dataDirB);
      controllerB = await startControllerProcess({ dataDir: dataDirB, nodeArgs: opts.nodeArgs, args: storeArgs, timeoutMs: 60_000 });
      samplerB = new ProcSampler(controllerB.pid);
      samplerB.start();
    }
    const smp = new ProcSampler(controller.pid);
    sampler = smp;
    smp.start();
    const api = new ApiClient({
      url: `https://127.0.0.1:${controller.apiPort}`,
      token: (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim(),
      caPem: await readFile(join(dataDir, 'ca', 'ca-cert.pem'), 'utf8'),
      timeoutMs: 120_000,
    });
    const grpcAddress = `127.0.0.1:${controller.grpcPort}`;
    const apiB = controllerB
      ? new ApiClient({
          url: `https://127.0.0.1:${controllerB.apiPort}`,
          token: (await readFile(join(dataDirB, 'admin-token'), 'utf8')).trim(),
          caPem: await readFile(join(dataDirB, 'ca', 'ca-cert.pem'), 'utf8'),
          timeoutMs: 120_000,
        })
      : undefined;
    const addresses = controllerB ? [grpcAddress, `127.0.0.1:${controllerB.grpcPort}`] : [grpcAddress];
    // With two controllers, changes alternate between their APIs: a change made through either reaches every agent.
    const via = (k: number) => (apiB && k % 2 === 1 ? { api: apiB, via: 'B' as const } : { api, via: apiB ? ('A' as const) : undefined });

    log(`setup: ${opts.services} services, ${opts.agents} tokens and joins`);
    const cpu0 = smp.sample()?.cpuSeconds ?? 0;
    const tSetup = Date.now();
    const setup = await setupMesh({
      api,
      grpcAddress,
      services: opts.services,
      agents: opts.agents,
      apiConcurrency: opts.apiConcurrency,
      joinConcurrency: opts.joinConcurrency,
      deadline: tSetup + opts.setupTimeoutMs,
    });
    if (opts.sidecarEgress > 0) await applyScope(api, Math.min(opts.sidecarEgress, opts.services));
    const afterSetup = smp.sample();
    const setupS = (Date.now() - tSetup) / 1000;
    log(`setup done in ${round(setupS)} s; controller RSS ${mb(afterSetup?.rssBytes ?? 0)} MB`);

    log(`initial sync: ${opts.agents} agents in ${opts.agentProcs} process(es), ${opts.connectConcurrency} connecting at once`);
    const syncStart = now();
    const tSync = Date.now();
    fleet = AgentFleet.start({
      procs: opts.agentProcs,
      addresses,
      caPem: setup.caPem,
      creds: setup.creds,
      concurrency: opts.connectConcurrency,
    });
    const f = fleet;
    const ticker = setInterval(() => {
      const p = f.progress();
      log(
        `  synced ${p.synced}/${opts.agents}, failed ${p.failed}, opened ${p.open}; controller RSS ${mb(smp.samples.at(-1)?.rssBytes ?? 0)} MB`,
      );
    }, 10_000);
    let report: SyncReport | undefined;
    try {
      report = await fleet.waitSynced(tSync + opts.syncTimeoutMs);
    } finally {
      clearInterval(ticker);
    }
    const tSyncEnd = Date.now();
    const afterSync = smp.sample();
    await sleep(QUIET_AFTER_SYNC_MS);
    // Each controller reports the agents streaming to it.
    const counts = await Promise.all([api, ...(apiB ? [apiB] : [])].map(controllerSynced));
    const synced = counts.some((n) => n === null) ? null : counts.reduce<number>((a, n) => a + (n ?? 0), 0);
    const idle = smp.sample();
    const idleB = samplerB?.sample();
    const initialSync = syncResult(report, syncStart, (afterSync?.cpuSeconds ?? 0) - (afterSetup?.cpuSeconds ?? 0), synced);
    log(`initial sync: ${initialSync.seconds ?? 'TIMED OUT'} s, ${initialSync.synced} synced, ${initialSync.failed} failed`);
    if (initialSync.failed > 0) notes.push(`${initialSync.failed} agent streams failed; first: ${initialSync.errors[0] ?? '?'}`);

    const changes: ChangeResult[] = [];
    const newServices: ChangeResult[] = [];
    const tChanges = Date.now();
    if (report && report.synced > 0) {
      for (let k = 0; k < opts.changes; k++) {
        // Spread the changes over the services; each adds a second (third...) endpoint to its service.
        const seen = opts.sidecarEgress > 0 ? Math.min(opts.sidecarEgress, opts.services) : opts.services;
        const svc = serviceName(Math.floor(((k + 0.5) * seen) / opts.changes) % seen);
        const c = await measureChange({
          kind: 'endpoint',
          index: k + 1,
          service: svc,
          body: workload(`${svc}-w${k + 1}`, svc, `svc-host-x${k}`, benchAddress(opts.services + 1 + k)),
          markers: [{ typeUrl: EDS, name: clusterName(svc) }],
          ...via(k),
          fleet,
          sampler: smp,
          timeoutMs: opts.changeTimeoutMs,
          spacingMs: opts.spacingMs,
        });
        changes.push(c);
        log(`  endpoint change ${k + 1}/${opts.changes} (${svc}): ${c.convergenceMs ?? 'TIMEOUT'} ms, ${c.converged}/${c.agents} agents`);
      }
      if (opts.sidecarEgress > 0 && opts.newServices > 0) {
        notes.push('scoped run: new services are outside the Sidecar egress, so they reach no agent; not measured');
      }
      for (let k = 0; k < (opts.sidecarEgress > 0 ? 0 : opts.newServices); k++) {
        const svc = `svc-new${k}`;
        const host = `${svc}.${NAMESPACE}.mesh`;
        const c = await measureChange({
          kind: 'service',
          index: k + 1,
          service: svc,
          body: workload(`${svc}-w0`, svc, `svc-host-new${k}`, benchAddress(opts.services + opts.changes + 1 + k)),
          markers: [
            { typeUrl: CDS, name: clusterName(svc) },
            { typeUrl: EDS, name: clusterName(svc) },
            // The new outbound listener is named after the service's VIP, unknown before the change: any LDS push.
            { typeUrl: LDS, name: '*' },
            { typeUrl: RDS, name: outboundRouteName(host, PORT) },
            { typeUrl: NDS, name: nameTableShardName(host) },
          ],
          ...via(k),
          fleet,
          sampler: smp,
          timeoutMs: opts.serviceTimeoutMs,
          spacingMs: opts.spacingMs,
        });
        newServices.push(c);
        log(`  new service ${k + 1}/${opts.newServices}: ${c.convergenceMs ?? 'TIMEOUT'} ms, ${c.converged}/${c.agents} agents`);
      }
    } else {
      notes.push('no agent synced: changes not measured');
    }
    const tChangesEnd = Date.now();
    const last = smp.sample();

    await fleet.stop();
    fleet = undefined;
    smp.stop();
    const tStop = Date.now();
    const pid = controller.pid;
    const exit = await controller.stop();
    const tExited = Date.now();
    controller = undefined;
    const lastB = samplerB?.sample();
    samplerB?.stop();
    const exitB = await controllerB?.stop();
    controllerB = undefined;
    let cpuProfile: string | undefined;
    if (opts.cpuProfDir) {
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the controller's main thread (1 is tsx's loader).
      const files = (await readdir(opts.cpuProfDir).catch(() => [] as string[])).filter((n) => n.includes(`.${pid}.0.`)).sort();
      cpuProfile = files.length ? join(opts.cpuProfDir, files[files.length - 1] ?? '') : 'not written (controller did not exit cleanly)';
    }

    const summary = summarizeChanges(changes, opts.changeTimeoutMs);
    if ((summary.agentEluMax ?? 0) > 0.9) {
      notes.push(`an agent process was ${summary.agentEluMax} busy during a change: part of the convergence may be the harness's`);
    }
    const partial: Omit<BenchResult, 'targets'> = {
      benchmark: 'xds',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      command: `node --import tsx test/bench/xds/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
      options: opts,
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? '',
        memoryBytes: totalmem(),
        node: process.version,
        platform: process.platform,
      },
      setup: {
        seconds: round(setupS),
        registerS: round(setup.times.registerMs / 1000),
        modelS: round(setup.times.modelMs / 1000),
        tokensS: round(setup.times.tokensMs / 1000),
        joinS: round(setup.times.joinMs / 1000),
        controllerCpuSeconds: round((afterSetup?.cpuSeconds ?? 0) - cpu0),
      },
      initialSync,
      changes,
      newServices,
      newServiceSummary: summarizeChanges(newServices, opts.serviceTimeoutMs),
      controller: {
        rssAfterSetupMB: mb(afterSetup?.rssBytes ?? 0),
        rssIdleAfterSyncMB: mb(idle?.rssBytes ?? 0),
        rssPeakDuringSyncMB: mb(smp.maxRss(tSync, tSyncEnd)),
        rssPeakDuringChangesMB: mb(smp.maxRss(tChanges, tChangesEnd)),
        rssPeakMB: mb(last?.hwmBytes ?? 0),
        cpuSecondsTotal: round(last?.cpuSeconds ?? 0),
        exit: `code ${exit.code}, signal ${exit.signal}`,
        ...(cpuProfile ? { cpuProfile } : {}),
      },
      ...(lastB && exitB
        ? {
            controllerB: {
              rssIdleAfterSyncMB: mb(idleB?.rssBytes ?? 0),
              rssPeakMB: mb(lastB.hwmBytes),
              cpuSecondsTotal: round(lastB.cpuSeconds),
              exit: `code ${exitB.code}, signal ${exitB.signal}`,
            },
          }
        : {}),
      summary,
      phases: {
        setupStart: tSetup,
        syncStart: tSync,
        syncEnd: tSyncEnd,
        changesStart: tChanges,
        changesEnd: tChangesEnd,
        controllerStop: tStop,
        controllerExited: tExited,
      },
      notes,
    };
    return { ...partial, targets: checkTargets(partial) };
  } finally {
    await fleet?.stop().catch(() => {});
    sampler?.stop();
    for (const c of [controller, controllerB]) {
      if (!c) continue;
      const tail = c.stderrTail().trim();
      if (tail) log(`controller stderr (tail): ${tail.slice(-1500)}`);
      await c.stop().catch(() => {});
    }
    samplerB?.stop();
    await consul?.stop().catch(() => {});
    if (opts.keep) log(`data directory kept: ${dataDir}`);
    else await rm(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  let opts: BenchOptions | undefined;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${formatError(e)}\n`);
    return 2;
  }
  if (!opts) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    const result = await run(opts);
    process.stdout.write(`${formatTable(result)}\n`);
    const file = await writeResult(result, RESULTS_DIR);
    process.stdout.write(`\nresults: ${file}\n`);
    // A missed target is a finding, not a failure of the benchmark.
    return 0;
  } catch (e) {
    process.stderr.write(`bench:xds failed: ${isVmeshError(e) ? formatError(e) : ((e as Error).stack ?? String(e))}\n`);
    return isVmeshError(e) && e.code === ErrorCode.Usage ? 2 : 1;
  }
}

// Exit explicitly: a grpc or https handle left open must not keep a finished benchmark alive.
main().then(
  (code) => process.exit(code),
  () => process.exit(1),
);

/** A Sidecar in the agents' namespace whose egress lists the first `n` services, as Istio users scope sidecars. */
async function applyScope(api: ApiClient, n: number): Promise<void> {
  const hosts = Array.from({ length: n }, (_, i) => JSON.stringify(`./${serviceName(i)}.${NAMESPACE}.mesh`));
  const yaml = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ${NAMESPACE}}
spec:
  egress:
  - hosts: [${hosts.join(', ')}]
`;
  await api.call(applyResult, 'POST', '/v1/config', yaml);
  // The model is rebuilt after a debounce; agents that connected before it would see everything first.
  await sleep(1500);
}
