// The demo's lab: hosts as network namespaces (test/lab/lab.ts), the controller on h1, an agent with capture on
// each other host, the sample apps each under its own uid, and the CLI run on the controller's host.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, type ExecResult, type Lab, type LabHost, type LabProcess } from '../test/lab/lab.js';
import type { AgentHost, Workload } from './bookinfo.js';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'src', 'cli', 'main.ts');
// Resolved here so the processes find tsx whatever directory the demo is started from.
const TSX_LOADER = import.meta.resolve('tsx');
const TSX = ['--import', TSX_LOADER];
const node = process.execPath;
const API = 'https://127.0.0.1:15014';
/** The agent's sockets carry the proxy's group, which capture lets through. */
const AGENT_IDS = { uid: 0, gid: 1337 };

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 250 ms until it returns a value; throws `what` after `timeoutMs`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what} (waited ${Math.round(timeoutMs / 1000)} s)`);
    await sleep(250);
  }
}

/** stdout of a finished command, or an error whose first line says what failed and why (the command's last stderr line). */
function checked(what: string, r: ExecResult, timeoutMs: number): string {
  if (r.code === 0) return r.stdout;
  const why = r.timedOut
    ? `no answer within ${Math.round(timeoutMs / 1000)} s`
    : (r.stderr.trim().split('\n').pop() ?? `exit code ${r.code ?? r.signal}`);
  throw new Error(`${what} failed: ${why}\n${r.stderr}`);
}

/**
 * The proxy runs as its own user (1337) and the apps as theirs, all from this checkout: one in a private home
 * directory (Debian's /root, or /home/* since Debian 12) would fail late and obscurely, so say so up front.
 */
export function requireReadableCheckout(uids: readonly number[]): void {
  const files = [join(ROOT, 'demo', 'apps', 'http.mjs'), join(ROOT, 'src', 'agent', 'proxy-worker-main.ts'), fileURLToPath(TSX_LOADER)];
  for (const uid of uids) {
    for (const f of files) {
      const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'test', '-r', f]);
      if (r.status !== 0) {
        throw new Error(
          `${f} is not readable by uid ${uid} (the proxy and the apps run as their own users): ` +
            'put the checkout where every user can read it (e.g. /opt/vmesh) or give its parent directories o+x',
        );
      }
    }
  }
}

export class DemoMesh {
  private readonly procs = new Map<string, LabProcess>();
  private readonly netnsDirs: string[] = [];

  private constructor(
    readonly lab: Lab,
    private readonly dir: string,
  ) {}

  static async create(hosts: number): Promise<DemoMesh> {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-demo-'));
    try {
      return new DemoMesh(await createLab({ hosts, ipv6: false }), dir);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  host(name: string): LabHost {
    return this.lab.host(name);
  }

  /** Gives a host an on-link resolver, as a real host has; capture sends its queries to the agent's DNS proxy. */
  resolver(name: AgentHost): void {
    const d = `/etc/netns/${this.host(name).netns}`;
    mkdirSync(d, { recursive: true });
    this.netnsDirs.push(d);
    writeFileSync(join(d, 'resolv.conf'), 'nameserver 198.18.0.254\n');
  }

  /** `vmesh ARGS` on the controller's host, against its API; resolves with stdout. */
  async cli(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    const argv = [...TSX, CLI, ...args, '--controller', API, '--data-dir', join(this.dir, 'controller')];
    return checked(`vmesh ${args.slice(0, 2).join(' ')}`, await this.host('h1').exec(node, argv, { timeoutMs }), timeoutMs);
  }

  async startController(): Promise<void> {
    const h1 = this.host('h1');
    // A 15 s host timeout makes agents report every 5 s, so the traffic graph fills within the demo's minute.
    const args = ['controller', '--data-dir', join(this.dir, 'controller'), '--advertise', h1.ipv4, '--host-timeout', '15'];
    const p = h1.spawn(node, [...TSX, CLI, ...args]);
    this.procs.set('controller', p);
    await p.waitForLine(/"ready":true/, 90_000);
  }

  async startApp(w: Workload): Promise<void> {
    if (!w.app) return;
    const p = this.host(w.host).spawn(node, [w.app.file], { uid: w.uid, gid: w.uid, env: { ...w.app.env, PORT: String(w.port) } });
    this.procs.set(w.name, p);
    await p.waitForLine(/^ready$/, 30_000);
  }

  /** Joins a host with a fresh single-use token; resolves once its proxy listens and capture is installed. */
  async startAgent(name: AgentHost): Promise<void> {
    const h = this.host(name);
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'token'), (await this.cli(['token', 'create', '--host', name])).trim(), { mode: 0o600 });
    const args = ['agent', '--controller', `${this.host('h1').ipv4}:15012`, '--token-file', join(dir, 'token')];
    const p = h.spawn(node, [...TSX, CLI, ...args, '--data-dir', dir, '--host-name', name], AGENT_IDS);
    this.procs.set(`agent ${name}`, p);
    await p.waitForLine(/"ready":true/, 90_000);
    await until(`the agent on ${name} never installed capture`, 60_000, async () =>
      (await h.execOk('nft', ['list', 'tables'])).includes('inet vmesh') ? true : undefined,
    );
  }

  /** GET on an agent's admin port (localhost only, so from inside its host). */
  async admin(name: AgentHost, path: string): Promise<string> {
    const js = `require('http').get('http://127.0.0.1:15000${path}',r=>{let b='';r.on('data',c=>b+=c);r.on('end',()=>console.log(b))})`;
    return checked(`GET ${path} on the agent of ${name}`, await this.host(name).exec(node, ['-e', js], { timeoutMs: 15_000 }), 15_000);
  }

  /** Runs demo/apps/traffic.mjs on the client's host as the client's uid; its one JSON line. */
  async traffic<T>(file: string, uid: number, args: readonly string[], timeoutMs: number): Promise<T> {
    const out = checked(`the traffic from h2`, await this.host('h2').exec(node, [file, ...args], { uid, gid: uid, timeoutMs }), timeoutMs);
    return JSON.parse(out.trim().split('\n').pop() ?? '{}') as T;
  }

  /** The last lines each mesh process wrote to stderr, for a failure's details. */
  diagnostics(): string {
    return [...this.procs]
      .map(([name, p]) => `--- ${name} (pid ${p.pid}) stderr, last 3000 characters:\n${p.stderr().slice(-3000)}`)
      .join('\n');
  }

  async teardown(): Promise<void> {
    await this.lab.teardown();
    for (const d of [...this.netnsDirs, this.dir]) rmSync(d, { recursive: true, force: true });
  }
}
