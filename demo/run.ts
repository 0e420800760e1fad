// `npm run demo`: bookinfo on a lab of hosts in network namespaces, as root. It builds the lab, starts a controller
// and an agent per host, runs the sample apps each as its own uid, registers them with the CLI, applies an Istio
// VirtualService that splits reviews 90/10, drives traffic through capture and prints the split, the mTLS identity
// each server saw and proxy-status. Everything is torn down at the end, on failure, and on Ctrl-C or SIGTERM.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { requireLabTools } from '../test/lab/lab.js';
import { AGENT_HOSTS, CLIENT, PRODUCTPAGE_URL, registerArgs, registrationWaves, TRAFFIC_APP, WORKLOADS } from './bookinfo.js';
import { DemoMesh, requireReadableCheckout, sleep, until } from './mesh.js';
import { Progress } from './progress.js';
import { renderFailures, renderIdentities, renderSplit, type TrafficResult, verdict } from './report.js';

const SPLIT_FILE = join(import.meta.dirname, 'reviews-split.yaml');
const WEIGHTS = { v1: 90, v2: 10 };
const DEADLINE_S = 240;
const STEPS = 10;

interface StatusRow {
  node: string;
  connected: boolean;
  types: Record<string, { state: string }>;
}

const progress = new Progress(process.stdout, STEPS);
let mesh: DemoMesh | undefined;
let ending = false;

/** The one way out: tears the lab down, prints `message` last, exits. The first caller wins; later ones wait for it. */
async function end(code: number, message: string | (() => string)): Promise<never> {
  if (ending) return new Promise<never>(() => {});
  ending = true;
  clearTimeout(watchdog);
  progress.breakLine();
  if (mesh) {
    const m = mesh;
    try {
      await progress.step('lab torn down: processes stopped, namespaces and capture gone', () => m.teardown(), { numbered: false });
    } catch (e) {
      process.stderr.write(`vmesh demo: teardown failed: ${(e as Error).message.split('\n')[0]}\n`);
      code = code || 1;
    }
  }
  (code === 0 ? process.stdout : process.stderr).write(`${typeof message === 'string' ? message : message()}\n`);
  process.exit(code);
}

function fail(e: unknown): Promise<never> {
  // Once ending (an interrupt), what the interrupted step throws is its consequence, not a failure.
  if (ending) return new Promise<never>(() => {});
  const err = e instanceof Error ? e : new Error(String(e));
  const log = join(tmpdir(), `vmesh-demo-${process.pid}.log`);
  const first = (err.message.split('\n')[0] ?? '').slice(0, 300);
  if (!mesh) return end(1, `vmesh demo: FAILED: ${first}`);
  writeFileSync(log, `${err.stack ?? err.message}\n\n${mesh.diagnostics()}\n`);
  return end(1, `vmesh demo: FAILED at ${progress.where()} after ${progress.elapsed()}: ${first} (details: ${log})`);
}

const watchdog = setTimeout(() => void fail(new Error(`not finished within ${DEADLINE_S} s`)), DEADLINE_S * 1000);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (!ending) process.stderr.write(`\nvmesh demo: ${sig}, tearing the lab down\n`);
    void end(sig === 'SIGINT' ? 130 : 143, `vmesh demo: interrupted by ${sig} at ${progress.where()}; the lab is torn down`);
  });
}
process.on('unhandledRejection', (e) => void fail(e));

async function waitSynced(m: DemoMesh): Promise<void> {
  // The weighted route on productpage's host: the hop the split applies to.
  await until('the reviews split never reached the agent on h3', 60_000, async () => {
    const dump = await m.admin('h3', '/config_dump');
    return dump.includes('outbound|9082|v2|reviews.default.mesh') && dump.includes('"weighted_clusters"') ? true : undefined;
  });
  await until('proxy-status never showed every agent connected and SYNCED', 60_000, async () => {
    const rows = JSON.parse(await m.cli(['proxy-status', '-o', 'json'])) as StatusRow[];
    const synced = (r: StatusRow) => r.connected && Object.values(r.types).every((t) => t.state === 'SYNCED');
    return AGENT_HOSTS.every((h) => rows.some((r) => r.node === h && synced(r))) ? true : undefined;
  });
  // What an agent accepted, its proxy workers swap in right after.
  await sleep(500);
}

/** The proxy-status table once it shows every agent connected and SYNCED (a health report may be in flight). */
function finalStatus(m: DemoMesh): Promise<string> {
  const synced = (table: string, h: string) => new RegExp(`^${h}\\s+yes \\(\\w+\\)\\s+\\S+(\\s+SYNCED){5}\\s`, 'm').test(table);
  return until('proxy-status did not show every agent SYNCED', 30_000, async () => {
    const table = await m.cli(['proxy-status']);
    return AGENT_HOSTS.every((h) => synced(table, h)) ? table : undefined;
  });
}

/**
 * `vmesh graph` once every agent has reported since the traffic ended (they report every few seconds): before
 * that, a callee's host may not have reported yet and its calls would show only as their callers saw them.
 */
function reportedGraph(m: DemoMesh, trafficEnded: number): Promise<string> {
  type Host = { name: string; lastSeen?: string };
  // The agent reads its proxies' counters just before it reports: a margin covers that read.
  const after = trafficEnded + 500;
  return until('not every agent reported after the traffic', 30_000, async () => {
    const hosts = JSON.parse(await m.cli(['host', 'list', '-o', 'json'])) as Host[];
    const reported = AGENT_HOSTS.every((h) => Date.parse(hosts.find((x) => x.name === h)?.lastSeen ?? '') > after);
    return reported ? m.cli(['graph']) : undefined;
  });
}

/** One request until the whole chain answers with an identity on every hop: certificates issued and served. */
async function warmUp(m: DemoMesh): Promise<number> {
  let tries = 0;
  await until('no request crossed the whole chain with mTLS on every hop', 60_000, async () => {
    tries++;
    const r = await m.traffic<TrafficResult>(TRAFFIC_APP, CLIENT.uid, [PRODUCTPAGE_URL, '1', '1'], 30_000);
    return r.ok === 1 && r.hops.every((h) => h.uri && h.by) ? true : undefined;
  });
  return tries;
}

function header(m: DemoMesh): string {
  const lines = [`vmesh demo: bookinfo on ${m.lab.hosts.length} lab hosts (network namespaces), as a user would run it`];
  lines.push(`  h1  ${m.host('h1').ipv4}  controller (embedded store, CA, xDS)`);
  for (const h of AGENT_HOSTS) {
    const ws = WORKLOADS.filter((w) => w.host === h).map((w) => `${w.name} (uid ${w.uid})`);
    lines.push(`  ${h}  ${m.host(h).ipv4}  agent + capture; ${ws.join(', ')}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { requests: { type: 'string', default: '200' } } });
  const requests = Number(values.requests);
  if (!Number.isInteger(requests) || requests < 1 || requests > 10_000)
    throw new Error(`--requests must be 1..10000, got ${values.requests}`);
  requireLabTools(['ip', 'nft', 'setpriv']);
  // 1337: the proxy's user, the agent's default.
  requireReadableCheckout([1337, ...WORKLOADS.map((w) => w.uid)]);

  const m = await progress.step('lab: 4 hosts as network namespaces on one bridge, 198.18.0.1-4', () => DemoMesh.create(4));
  mesh = m;
  for (const h of AGENT_HOSTS) m.resolver(h);
  console.log(header(m));
  const apps = WORKLOADS.filter((w) => w.app);
  await progress.step(`controller on h1; ${apps.length} sample apps on h2-h4, each as its own uid`, () =>
    Promise.all([m.startController(), ...apps.map((w) => m.startApp(w))]),
  );
  await progress.step(`${WORKLOADS.length} workloads registered: vmesh workload register --uid U --service-account SA ...`, async () => {
    for (const wave of registrationWaves()) await Promise.all(wave.map((w) => m.cli(registerArgs(w, m.host(w.host).ipv4))));
  });
  await progress.step(`agents joined on ${AGENT_HOSTS.join(', ')} with single-use tokens: proxies listening, capture installed`, () =>
    Promise.all(AGENT_HOSTS.map((h) => m.startAgent(h))),
  );
  await progress.step(`vmesh config apply -f ${relative(process.cwd(), SPLIT_FILE)}: reviews v1 90%, v2 10%`, () =>
    m.cli(['config', 'apply', '-f', SPLIT_FILE]),
  );
  await progress.step('config pushed: every agent SYNCED, the split live on h3', () => waitSynced(m));
  await progress.step('first request crossed client → productpage → details, reviews → ratings over mTLS', () => warmUp(m), {
    summary: (n) => `${n} ${n === 1 ? 'try' : 'tries'}`,
  });
  const result = await progress.step(
    `${requests} requests to http://productpage:9080/ from h2 as the client's uid ${CLIENT.uid}`,
    () => m.traffic<TrafficResult>(TRAFFIC_APP, CLIENT.uid, [PRODUCTPAGE_URL, String(requests), '8'], 120_000),
    { summary: (r) => `${r.ok}/${r.requests} answered, p50 ${r.p50} ms, p99 ${r.p99} ms` },
  );
  const trafficEnded = Date.now();
  const status = await progress.step('vmesh proxy-status', () => finalStatus(m));
  const graph = await progress.step('vmesh graph: the traffic every agent reported to the controller', () =>
    reportedGraph(m, trafficEnded),
  );

  const failures = renderFailures(result);
  console.log(
    [
      '',
      renderSplit(result, WEIGHTS),
      '',
      renderIdentities(result),
      ...(failures ? ['', failures] : []),
      '',
      '$ vmesh proxy-status',
      status.trimEnd(),
      '',
      '$ vmesh graph    # what the UI at https://<controller>:15014/ui/ draws (vmesh ui prints its URL)',
      graph.trimEnd(),
      '',
    ].join('\n'),
  );
  const bad = verdict(result, WEIGHTS);
  if (bad) await end(1, `vmesh demo: FAILED: the mesh ran but ${bad}`);
  await end(
    0,
    () => `vmesh demo: done in ${progress.elapsed()}: ${result.ok}/${result.requests} requests, split and identities as configured`,
  );
}

main().catch(fail);
