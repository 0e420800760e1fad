// Test lab: N "hosts" as network namespaces on one bridge. The bridge lives in its own "switch" namespace so the
// machine's root namespace never gains an interface, and every name carries our pid so a later run can tell
// leftovers of a dead run (safe to remove) from a concurrent live run (never touched).
import { type ChildProcess, execFileSync, spawn as spawnChild } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface ExecOptions {
  uid?: number;
  gid?: number;
  input?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}
export interface SpawnOptions {
  uid?: number;
  gid?: number;
  env?: Record<string, string>;
}
export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface LabProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the first stdout line (since start, not since this call) matching `re`. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Every stdout line from the start, ending when the process exits. */
  lines(): AsyncIterableIterator<string>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
  stop(): Promise<void>;
}

export interface LabHost {
  readonly name: string;
  readonly netns: string;
  readonly ipv4: string;
  /** Empty when the lab was created with `ipv6: false` (IPv6 is then disabled in the namespace). */
  readonly ipv6: string;
  /** Never throws on a non-zero exit. A `uid` without `gid` uses the uid as gid. */
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  execOk(cmd: string, args: string[], opts?: ExecOptions): Promise<string>;
  spawn(cmd: string, args: string[], opts?: SpawnOptions): LabProcess;
}

export interface Lab {
  readonly id: string;
  readonly hosts: readonly LabHost[];
  host(name: string): LabHost;
  teardown(): Promise<void>;
}

export const LAB_IPV4_PREFIX = 24;
export const LAB_IPV6_PREFIX = 64;
const NS_RE = /^vmesh-(\d+)-/;
// `ip` and friends live in sbin, which a non-login PATH may lack.
const PATH = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean);
const ENV = { ...process.env, PATH: [...new Set(PATH)].join(delimiter) };

export function requireLabTools(tools: string[] = ['ip', 'nft', 'iptables', 'setpriv']): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (the lab creates network namespaces)');
  for (const t of tools) {
    const found = PATH.some((dir) => {
      try {
        accessSync(join(dir, t), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    if (!found) missing.push(`\`${t}\``);
  }
  if (missing.length > 0) throw new Error(`vmesh lab cannot run, missing: ${missing.join(', ')}`);
}

function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawnChild(cmd, args, { env: { ...ENV, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    // A spawn failure (ENOENT) is reported like a failed command, keeping exec's never-throws promise.
    child.on('error', (err) => {
      stderr += String(err);
    });
    child.stdin.on('error', () => {
      /* the command may exit without reading its input */
    });
    child.stdin.end(opts.input ?? '');
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, stdout, stderr });
    });
  });
}

async function runOk(cmd: string, args: string[], opts?: ExecOptions): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.timedOut ? 'timed out' : r.code === null ? `signal ${r.signal}` : `exit code ${r.code}`;
    throw new Error(`command failed (${why}): ${[cmd, ...args].join(' ')}\n${r.stderr.trim()}`);
  }
  return r.stdout;
}

function nsArgv(ns: string, cmd: string, args: string[], o: { uid?: number; gid?: number }): string[] {
  const priv =
    o.uid === undefined && o.gid === undefined
      ? []
      : ['setpriv', `--reuid=${o.uid ?? 0}`, `--regid=${o.gid ?? o.uid ?? 0}`, '--clear-groups'];
  return ['netns', 'exec', ns, ...priv, cmd, ...args];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

async function netnsPids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns]);
  return r.stdout
    .split('\n')
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

/** Kills everything left in a namespace and deletes it; a namespace that is already gone is fine. */
async function destroyNetns(ns: string): Promise<void> {
  // Loop because a process can fork between listing and killing.
  for (let i = 0; i < 5; i++) {
    const pids = await netnsPids(ns);
    if (pids.length === 0) break;
    for (const pid of pids) killQuietly(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 20));
  }
  await run('ip', ['netns', 'del', ns]);
}

async function listNetns(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

async function removeDeadLeftovers(): Promise<void> {
  const dead = (await listNetns()).filter((ns) => {
    const m = NS_RE.exec(ns);
    return m !== null && !isAlive(Number(m[1]));
  });
  await Promise.all(dead.map(destroyNetns));
}

function startProcess(ns: string, cmd: string, args: string[], opts: SpawnOptions): LabProcess {
  const child = spawnChild('ip', nsArgv(ns, cmd, args, opts), { env: { ...ENV, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let errText = '';
  let done = false;
  const wakers = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...wakers]) w();
  };
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts.map((l) => l.replace(/\r$/, '')));
    wake();
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    errText += d;
  });
  child.on('error', (err) => {
    errText += String(err);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      if (partial) lines.push(partial);
      partial = '';
      done = true;
      wake();
      resolve({ code, signal });
    });
  });
  // A forgotten process must not keep a failing test file alive (the exit hook then cleans up), so the child is
  // unreferenced except while someone awaits it.
  let holds = 0;
  const refAll = (on: boolean): void => {
    for (const h of [child, child.stdout, child.stderr] as Array<{ ref?(): void; unref?(): void } | null>) on ? h?.ref?.() : h?.unref?.();
  };
  const hold = async <T>(p: Promise<T>): Promise<T> => {
    if (holds++ === 0) refAll(true);
    try {
      return await p;
    } finally {
      if (--holds === 0) refAll(false);
    }
  };
  refAll(false);
  const describe = (): string => `${cmd} ${args.join(' ')} in ${ns}`;
  const proc: LabProcess = {
    child,
    pid: child.pid ?? -1,
    exited,
    stderr: () => errText,
    waitForLine: (re, timeoutMs = 10_000) =>
      hold(
        new Promise<string>((resolve, reject) => {
          const check = (): void => {
            const hit = lines.find((l) => re.test(l));
            if (hit !== undefined) finish(() => resolve(hit));
            else if (done) finish(() => reject(new Error(`${describe()} exited before printing ${re}; stderr:\n${errText}`)));
          };
          const timer = setTimeout(
            () =>
              finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${describe()}; stderr:\n${errText}`))),
            timeoutMs,
          );
          const finish = (f: () => void): void => {
            clearTimeout(timer);
            wakers.delete(check);
            f();
          };
          wakers.add(check);
          check();
        }),
      ),
    lines: async function* () {
      for (let i = 0; ; i++) {
        while (i >= lines.length && !done)
          await hold(
            new Promise<void>((r) => {
              const w = (): void => {
                wakers.delete(w);
                r();
              };
              wakers.add(w);
            }),
          );
        if (i >= lines.length) return;
        yield lines[i] as string;
      }
    },
    stop: () =>
      hold(
        (async () => {
          if (done || child.pid === undefined) return;
          killQuietly(child.pid, 'SIGTERM');
          const timer = setTimeout(() => {
            if (child.pid !== undefined) killQuietly(child.pid, 'SIGKILL');
          }, 2000);
          await exited;
          clearTimeout(timer);
        })(),
      ),
  };
  return proc;
}

// One exit hook for all labs: `exit` handlers must be synchronous, and one per lab would trip MaxListeners.
const liveLabs = new Map<string, { namespaces: string[]; procs: Set<LabProcess> }>();
process.on('exit', () => {
  for (const lab of liveLabs.values()) {
    for (const p of lab.procs) killQuietly(p.pid, 'SIGKILL');
    for (const ns of lab.namespaces) {
      try {
        const out = execFileSync('ip', ['netns', 'pids', ns], { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        for (const pid of out.split('\n').filter((l) => /^\d+$/.test(l))) killQuietly(Number(pid), 'SIGKILL');
        execFileSync('ip', ['netns', 'del', ns], { env: ENV, stdio: 'ignore' });
      } catch {
        /* best effort while exiting */
      }
    }
  }
});

let labCounter = 0;

export async function createLab(opts: { hosts: number; ipv6?: boolean }): Promise<Lab> {
  requireLabTools(['ip']);
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 250) throw new Error(`hosts must be 1..250, got ${opts.hosts}`);
  const ipv6 = opts.ipv6 ?? true;
  await removeDeadLeftovers();
  const id = `vmesh-${process.pid}-${labCounter++}`;
  const sw = `${id}-sw`;
  const namespaces: string[] = [];
  const procs = new Set<LabProcess>();
  liveLabs.set(id, { namespaces, procs });

  let torn: Promise<void> | undefined;
  const teardown = (): Promise<void> => {
    torn ??= (async () => {
      await Promise.all([...procs].map((p) => p.stop()));
      // Hosts before the switch: deleting the switch first would be fine too, but this keeps eth0 gone last.
      await Promise.all(namespaces.filter((ns) => ns !== sw).map(destroyNetns));
      if (namespaces.includes(sw)) await destroyNetns(sw);
      liveLabs.delete(id);
    })();
    return torn;
  };

  const hosts: LabHost[] = [];
  try {
    // Sequential: the first `ip netns add` on a machine sets up the /run/netns mount, and concurrent
    // first calls can stack mounts.
    for (const ns of [sw, ...Array.from({ length: opts.hosts }, (_, i) => `${id}-h${i + 1}`)]) {
      await runOk('ip', ['netns', 'add', ns]);
      namespaces.push(ns);
    }
    await runOk('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0', 'mcast_snooping', '0']);
    // The switch is a plain L2 wire: snooping off so neighbour-discovery multicast always floods, bridged frames
    // kept out of the switch namespace's netfilter (br_netfilter is on by default here), and no IPv6 of its own.
    await runOk('ip', [
      'netns',
      'exec',
      sw,
      'sh',
      '-c',
      'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done; ' +
        'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; true',
    ]);
    await Promise.all([runOk('ip', ['-n', sw, 'link', 'set', 'lo', 'up']), runOk('ip', ['-n', sw, 'link', 'set', 'br0', 'up'])]);

    await Promise.all(
      namespaces.slice(1).map(async (ns, i) => {
        const port = `v${i + 1}`;
        await runOk('ip', ['-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        await runOk('ip', ['-n', sw, 'link', 'set', port, 'master', 'br0', 'up']);
        // With DAD off the link-local address is usable at once too, not only the `nodad` global one.
        await runOk('ip', [
          'netns',
          'exec',
          ns,
          'sh',
          '-c',
          ipv6
            ? 'echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad'
            : 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6',
        ]);
        await runOk('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        await runOk('ip', ['-n', ns, 'addr', 'add', `198.18.0.${i + 1}/${LAB_IPV4_PREFIX}`, 'dev', 'eth0']);
        if (ipv6) await runOk('ip', ['-n', ns, 'addr', 'add', `2001:2::${i + 1}/${LAB_IPV6_PREFIX}`, 'dev', 'eth0', 'nodad']);
        await runOk('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      }),
    );
    await waitReady(sw, namespaces.slice(1));

    namespaces.slice(1).forEach((ns, i) => {
      hosts.push({
        name: `h${i + 1}`,
        netns: ns,
        ipv4: `198.18.0.${i + 1}`,
        ipv6: ipv6 ? `2001:2::${i + 1}` : '',
        exec: (cmd, args, o = {}) => run('ip', nsArgv(ns, cmd, args, o), o),
        execOk: (cmd, args, o = {}) => runOk('ip', nsArgv(ns, cmd, args, o), o),
        spawn: (cmd, args, o = {}) => {
          if (torn) throw new Error(`lab ${id} is torn down`);
          const p = startProcess(ns, cmd, args, o);
          procs.add(p);
          void p.exited.then(() => procs.delete(p));
          return p;
        },
      });
    });
  } catch (err) {
    await teardown();
    throw err;
  }
  return {
    id,
    hosts,
    teardown,
    host: (name) => {
      const h = hosts.find((x) => x.name === name);
      if (!h) throw new Error(`lab ${id} has no host ${name} (hosts: ${hosts.map((x) => x.name).join(', ')})`);
      return h;
    },
  };
}

/** Links up with carrier on every host and every bridge port forwarding, so the first packet is not lost. */
async function waitReady(sw: string, hostNs: string[]): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const ports = JSON.parse(await runOk('ip', ['-n', sw, '-j', '-d', 'link', 'show', 'master', 'br0'])) as Array<{
      operstate?: string;
      linkinfo?: { info_slave_data?: { state?: string } };
    }>;
    const hostLinks = await Promise.all(
      hostNs.map(
        async (ns) => (JSON.parse(await runOk('ip', ['-n', ns, '-j', 'link', 'show', 'eth0'])) as Array<{ operstate?: string }>)[0],
      ),
    );
    const ok =
      ports.length === hostNs.length &&
      ports.every((p) => p.operstate === 'UP' && p.linkinfo?.info_slave_data?.state === 'forwarding') &&
      hostLinks.every((l) => l?.operstate === 'UP');
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`lab links not ready after 5 s: ${JSON.stringify({ ports, hostLinks })}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
