// The lab the features-*.test.ts files share (one per file): h1 runs the controller (and is the unmeshed host),
// h2 is the client host (agent, proxy, capture; apps run as uid 1500 and call services by name), h3 the server
// host (agent, proxy, capture and the servers of test/lab/fixtures/feature-servers.mjs). Services and their
// workloads are applied as Istio YAML (ServiceEntry + WorkloadEntry on host h3) in one `vmesh config apply`; the two
// proxies talk mutual TLS with workload certificates (automatic mTLS, the default).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, type Lab, type LabHost, type LabProcess, requireLabTools } from './lab.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
const FIX = join(import.meta.dirname, 'fixtures');
const node = process.execPath;
export const APP = { uid: 1500, gid: 1500 } as const;

export interface EndpointSpec {
  readonly name: string;
  readonly port: number;
  readonly labels?: Readonly<Record<string, string>>;
}
export interface ServiceSpec {
  readonly name: string;
  /** The service port clients call (on the service's virtual IP). */
  readonly port: number;
  /** Istio port name, which gives the protocol: http, http2, grpc, tcp. */
  readonly portName: 'http' | 'http2' | 'grpc' | 'tcp';
  readonly endpoints: readonly EndpointSpec[];
}

export interface FeatureLab {
  readonly lab: Lab;
  readonly h1: LabHost;
  readonly h2: LabHost;
  readonly h3: LabHost;
  /** The agents now running (startAgent replaces an entry). */
  readonly agents: { h2: LabProcess; h3: LabProcess };
  readonly controller: LabProcess;
  /** Each agent's data dir (host credentials, last good config, token). */
  readonly agentDirs: { readonly h2: string; readonly h3: string };
  /** Starts an agent again on its data dir (it has joined already: no token needed); resolves once it is ready. */
  startAgent(name: 'h2' | 'h3'): Promise<LabProcess>;
  cli(args: string[]): Promise<string>;
  /** `vmesh config apply -f` of this YAML, on the controller host. */
  apply(yaml: string): Promise<void>;
  /** Polls an agent's applied xDS config until it contains every needle (and none of `absent`), then lets the proxy swap. */
  waitForConfig(host: 'h2' | 'h3', needles: readonly string[], absent?: readonly string[]): Promise<void>;
  /** Runs feature-client.mjs on a host (h2 by default) as the app's uid; returns its JSON line. */
  client<T = Record<string, unknown>>(mode: string, opts: object, on?: LabHost): Promise<T>;
  /** Starts feature-client.mjs without waiting for it (loop mode). */
  spawnClient(mode: string, opts: object): LabProcess;
  teardown(): Promise<void>;
}

/** A ServiceEntry selecting its WorkloadEntries on h3 at `serverIp`, one per endpoint. */
export function serviceYaml(s: ServiceSpec, serverIp: string): string {
  const protocol = { http: 'HTTP', http2: 'HTTP2', grpc: 'GRPC', tcp: 'TCP' }[s.portName];
  const docs = [
    `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${s.name}}
spec:
  hosts: [${s.name}.default.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: ${s.port}, name: ${s.portName}, protocol: ${protocol}}]
  workloadSelector: {labels: {app: ${s.name}}}
`,
  ];
  for (const e of s.endpoints) {
    const labels = JSON.stringify({ app: s.name, ...e.labels });
    docs.push(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${e.name}
  labels: ${labels}
  annotations: {vmesh.io/host: h3}
spec:
  address: "${serverIp}"
  ports: {${s.portName}: ${e.port}}
  labels: ${labels}
  serviceAccount: ${s.name}
`);
  }
  return docs.join('---\n');
}

/** GET on a host's agent admin (127.0.0.1:15000): the body. */
export async function adminGet(host: LabHost, path: string): Promise<string> {
  const r = await host.exec(
    node,
    ['-e', `require('http').get('http://127.0.0.1:15000${path}',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(b))})`],
    { timeoutMs: 10_000 },
  );
  return r.stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Builds the lab, starts everything, applies the services and `config`, and waits until both agents run them. */
export async function startFeatureLab(opts: {
  services: readonly ServiceSpec[];
  servers: readonly string[];
  config?: string;
  /** The nameserver in h2's and h3's resolv.conf (an on-link address; nothing answers there by default). */
  nameserver?: string;
  /** The controller's config file (YAML, e.g. a `mesh:` section). */
  controllerConfig?: string;
  /** More `vmesh agent` flags for both agents. */
  agentArgs?: readonly string[];
  /** IPv6 on every host (default true; false disables it in the namespaces). */
  ipv6?: boolean;
  /** The agents' capture backend (default nftables). */
  backend?: 'nftables' | 'iptables';
}): Promise<FeatureLab> {
  requireLabTools(['ip', 'nft', 'setpriv']);
  const lab = await createLab({ hosts: 3, ipv6: opts.ipv6 ?? true });
  const [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost];
  const ctlDir = await mkdtemp(join(tmpdir(), 'vmesh-feat-ctl-'));
  const agentDirs = { h2: await mkdtemp(join(tmpdir(), 'vmesh-feat-h2-')), h3: await mkdtemp(join(tmpdir(), 'vmesh-feat-h3-')) };
  const resolvDirs = [h2, h3].map((h) => `/etc/netns/${h.netns}`);
  const teardown = async (): Promise<void> => {
    await lab.teardown();
    for (const d of [ctlDir, agentDirs.h2, agentDirs.h3, ...resolvDirs]) rmSync(d, { recursive: true, force: true });
  };
  try {
    // An on-link resolver, as a real host has; capture sends the queries to the agent's DNS proxy.
    for (const d of resolvDirs) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'resolv.conf'), `nameserver ${opts.nameserver ?? '198.18.0.254'}\n`);
    }
    const api = 'https://127.0.0.1:15014';
    const cli = (args: string[]) =>
      h1.execOk(node, ['--import', 'tsx', CLI, ...args, '--controller', api, '--data-dir', ctlDir], { timeoutMs: 60_000 });
    const ctlArgs = ['--import', 'tsx', CLI, 'controller', '--data-dir', ctlDir, '--advertise', h1.ipv4];
    if (opts.controllerConfig !== undefined) {
      writeFileSync(join(ctlDir, 'controller.yaml'), opts.controllerConfig);
      ctlArgs.push('--config', join(ctlDir, 'controller.yaml'));
    }
    const controller = h1.spawn(node, ctlArgs);
    const servers = h3.spawn(node, [join(FIX, 'feature-servers.mjs'), ...opts.servers], APP);
    await Promise.all([controller.waitForLine(/"ready":true/, 60_000), servers.waitForLine(/^ready$/, 30_000)]);

    // The client app is a registered workload on h2 (running as APP's uid): its connections present its identity.
    await cli([
      'workload',
      'register',
      '--name',
      'app',
      '--service',
      'app',
      '--service-account',
      'app',
      '--address',
      h2.ipv4,
      '--port',
      'http:9999',
      '--host',
      'h2',
      '--uid',
      String(APP.uid),
      // No agent runs yet to present the identity.
      '--no-wait',
    ]);
    const spawnAgent = async (name: 'h2' | 'h3'): Promise<LabProcess> => {
      const dir = agentDirs[name];
      const args = ['--import', 'tsx', CLI, 'agent', '--controller', `${h1.ipv4}:15012`, '--token-file', join(dir, 'token')];
      args.push(...(opts.agentArgs ?? []));
      if (opts.backend === 'iptables') {
        writeFileSync(join(dir, 'agent.yaml'), 'capture:\n  backend: iptables\n');
        args.push('--config', join(dir, 'agent.yaml'));
      }
      // The agent's sockets carry the proxy's group, which capture lets through.
      const p = (name === 'h2' ? h2 : h3).spawn(node, [...args, '--data-dir', dir, '--host-name', name], { uid: 0, gid: 1337 });
      await p.waitForLine(/"ready":true/, 60_000);
      return p;
    };
    const join1 = async (name: 'h2' | 'h3'): Promise<LabProcess> => {
      writeFileSync(join(agentDirs[name], 'token'), (await cli(['token', 'create', '--host', name])).trim(), { mode: 0o600 });
      return spawnAgent(name);
    };
    const [a2, a3] = await Promise.all([join1('h2'), join1('h3')]);
    const agents = { h2: a2, h3: a3 };
    const startAgent = async (name: 'h2' | 'h3'): Promise<LabProcess> => {
      agents[name] = await spawnAgent(name);
      return agents[name];
    };
    const diag = () => `h2 agent:\n${agents.h2.stderr().slice(-3000)}\nh3 agent:\n${agents.h3.stderr().slice(-3000)}`;

    const file = join(ctlDir, 'apply.yaml');
    const apply = async (yaml: string): Promise<void> => {
      writeFileSync(file, yaml);
      await cli(['config', 'apply', '-f', file]);
    };
    const waitForConfig = async (host: 'h2' | 'h3', needles: readonly string[], absent: readonly string[] = []): Promise<void> => {
      const h = host === 'h2' ? h2 : h3;
      const until = Date.now() + 60_000;
      for (;;) {
        const dump = await adminGet(h, '/config_dump');
        if (needles.every((n) => dump.includes(n)) && !absent.some((n) => dump.includes(n))) break;
        if (Date.now() > until) {
          const missing = needles.filter((n) => !dump.includes(n));
          throw new Error(`${host} never applied config with ${JSON.stringify(missing)} without ${JSON.stringify(absent)}\n${diag()}`);
        }
        await sleep(250);
      }
      // The dump is what the agent accepted; its proxy swaps the compiled config right after.
      await sleep(500);
    };
    const client = async <T>(mode: string, o: object, on: LabHost = h2): Promise<T> => {
      const out = await on.execOk(node, [join(FIX, 'feature-client.mjs'), mode, JSON.stringify(o)], { ...APP, timeoutMs: 120_000 });
      return JSON.parse(out.trim().split('\n').pop() ?? '{}') as T;
    };
    const spawnClient = (mode: string, o: object) => h2.spawn(node, [join(FIX, 'feature-client.mjs'), mode, JSON.stringify(o)], APP);

    // Capture goes on once each agent's proxy listens.
    for (const h of [h2, h3]) {
      const until = Date.now() + 60_000;
      const installed = async () =>
        opts.backend === 'iptables'
          ? (await h.execOk('iptables-save', ['-t', 'nat'])).includes(':VMESH_OUTPUT')
          : (await h.execOk('nft', ['list', 'tables'])).includes('inet vmesh');
      while (!(await installed())) {
        if (Date.now() > until) throw new Error(`the agent on ${h.name} never installed capture\n${diag()}`);
        await sleep(250);
      }
    }
    const certUntil = Date.now() + 60_000;
    while (!(await adminGet(h2, '/certs')).includes('spiffe://cluster.local/ns/default/sa/app')) {
      if (Date.now() > certUntil) throw new Error(`h2 never got the app's workload certificate\n${diag()}`);
      await sleep(250);
    }
    await apply([...opts.services.map((s) => serviceYaml(s, h3.ipv4)), ...(opts.config ? [opts.config] : [])].join('---\n'));
    const outbound = opts.services.map((s) => `outbound|${s.port}||${s.name}.default.mesh`);
    const inbound = [...new Set(opts.services.flatMap((s) => s.endpoints.map((e) => `inbound|${e.port}||`)))];
    await Promise.all([waitForConfig('h2', outbound), waitForConfig('h3', inbound)]);
    return { lab, h1, h2, h3, agents, controller, agentDirs, startAgent, cli, apply, waitForConfig, client, spawnClient, teardown };
  } catch (e) {
    await teardown();
    throw e;
  }
}

/** Counts of `key(x)` over `xs`. */
export function tally<T>(xs: readonly T[], key: (x: T) => string | number | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) {
    const k = String(key(x));
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export interface HttpResult {
  readonly s?: number;
  readonly ms: number;
  readonly w?: string;
  readonly body?: string;
  readonly ov?: string;
  readonly rl?: string;
  /** The x-local-rate-limit header Istio's local rate limit sample adds to limited responses. */
  readonly lrl?: string;
  readonly id?: string;
  readonly e?: string;
}
export interface HttpRun {
  readonly results: readonly HttpResult[];
  readonly sockets: number;
}
