// A fleet of real systemd hosts on one machine: systemd-nspawn containers booting systemd as PID 1, each on its
// own overlay over the cached Debian root file system, joined by a bridge in a network namespace of the fleet's
// own (the machine's root namespace never gains an interface, route or address). Everything the fleet makes
// carries the owning process id, so a later run removes what a dead run left and never touches a live one.
// The machine's PID 1 is not systemd, hence --register=no --keep-unit and a cgroup of our own per launcher
// (see shared/notes/lab-and-fleet.md); machinectl and systemd-run -M do not work here: talk to hosts over ssh.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeFailure, ENV, isAlive, killQuietly, type RunOptions, type RunResult, run, runOk, SEARCH_PATH, sleep } from './exec.js';

/** The fleet's /24 (the lab uses 198.18.0.0/24): hosts are .1, .2, ...; the machine's end of the bridge is .254. */
export const FLEET_PREFIX = '198.18.16';
export const BRIDGE_ADDRESS = `${FLEET_PREFIX}.254`;
const STATE_ROOT = '/var/tmp';
const RUN_RE = /^vmesh-fleet-(\d+)$/;
const CGROUP_ROOTS = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd'];

export interface FleetHost {
  readonly name: string;
  readonly ip: string;
  /** The nspawn machine name (carries the pid). */
  readonly machine: string;
  /** Runs a shell command line on the host over ssh, as root. Never throws on a non-zero exit. */
  ssh(command: string, opts?: RunOptions): Promise<RunResult>;
  sshOk(command: string, opts?: RunOptions): Promise<string>;
  /** The journal and state of a unit, for failure messages. */
  diagnose(unit: string): Promise<string>;
}

export interface Fleet {
  readonly id: string;
  readonly netns: string;
  readonly bridge: string;
  readonly dir: string;
  /** Private key that logs in as root on every host. */
  readonly sshKey: string;
  /** ssh options that go with the key (no host key checks: every run makes new hosts). */
  readonly sshOptions: readonly string[];
  readonly hosts: readonly FleetHost[];
  host(name: string): FleetHost;
  /** Runs a machine-side command inside the fleet's network namespace (ssh, ansible-playbook). */
  inNet(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  teardown(): Promise<void>;
}

export interface FleetOptions {
  rootfs: string;
  hosts: readonly string[];
  /** Host paths bind-mounted read-only at the same path inside every host (e.g. the machine's node binary). */
  bindReadOnly?: readonly string[];
  log?: (line: string) => void;
  bootTimeoutMs?: number;
}

export function requireFleetTools(extra: readonly string[] = []): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (the fleet mounts overlays and boots containers)');
  const pkgs: Record<string, string> = {
    'systemd-nspawn': 'systemd-container',
    debootstrap: 'debootstrap',
    ssh: 'openssh-client',
    'ssh-keygen': 'openssh-client',
    nsenter: 'util-linux',
    ip: 'iproute2',
    chroot: 'coreutils',
  };
  for (const t of [...Object.keys(pkgs), ...extra]) {
    const found = SEARCH_PATH.some((dir) => {
      try {
        accessSync(join(dir, t), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    if (!found) missing.push(`\`${t}\`${pkgs[t] ? ` (Debian package ${pkgs[t]})` : ''}`);
  }
  if (!existsSync('/sys/fs/cgroup/unified') || !existsSync('/sys/fs/cgroup/systemd'))
    missing.push('the hybrid cgroup mounts /sys/fs/cgroup/unified and /sys/fs/cgroup/systemd');
  if (missing.length > 0) throw new Error(`vmesh fleet cannot run, missing: ${missing.join(', ')}`);
}

interface RunState {
  dir: string;
  netns: string;
  cgroup: string;
  merged: string[];
  /** nspawn launchers and the containers' PID 1 (host pids). */
  pids: number[];
}

function stateOf(pid: number): RunState {
  const dir = join(STATE_ROOT, `vmesh-fleet-${pid}`);
  const hostsDir = join(dir, 'hosts');
  const merged = existsSync(hostsDir) ? readdirSync(hostsDir).map((h) => join(hostsDir, h, 'merged')) : [];
  let pids: number[] = [];
  try {
    pids = readFileSync(join(dir, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    /* none recorded yet */
  }
  return { dir, netns: `vmfleet-${pid}`, cgroup: `vmesh-fleet-${pid}`, merged, pids };
}

function isMounted(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === path);
}

/** Only a process that still is one of ours (in our run's cgroup) is killed: pids get reused. */
function ownsPid(pid: number, st: RunState): boolean {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/${st.cgroup}/`);
  } catch {
    return false;
  }
}

/** Removes a run's cgroup trees depth-first; returns how many trees are still there (busy). */
function removeCgroups(name: string): number {
  let left = 0;
  for (const root of CGROUP_ROOTS) {
    const top = join(root, name);
    if (!existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (d: string): void => {
      dirs.push(d);
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    };
    try {
      walk(top);
      for (const d of dirs.reverse()) rmdirSync(d);
    } catch {
      left++;
    }
  }
  return left;
}

/** Synchronous last resort (exit hook, dead runs): kill, unmount lazily, drop the namespace and the cgroups. */
function destroySync(st: RunState, removeDir: boolean): void {
  for (const pid of st.pids) if (ownsPid(pid, st)) killQuietly(pid, 'SIGKILL');
  for (const m of st.merged) {
    if (isMounted(m)) {
      try {
        execFileSync('umount', ['-l', m], { env: ENV, stdio: 'ignore' });
      } catch {
        /* best effort */
      }
    }
  }
  try {
    execFileSync('ip', ['netns', 'del', st.netns], { env: ENV, stdio: 'ignore' });
  } catch {
    /* already gone */
  }
  removeCgroups(st.cgroup);
  if (removeDir && st.merged.every((m) => !isMounted(m))) {
    try {
      execFileSync('rm', ['-rf', '--one-file-system', st.dir], { env: ENV, stdio: 'ignore' });
    } catch {
      /* best effort */
    }
  }
}

/** Removes what fleets of dead processes left behind (containers, overlays, namespaces, cgroups, state). */
export async function removeDeadRuns(): Promise<void> {
  const owners = new Set<number>();
  for (const f of readdirSync(STATE_ROOT)) {
    const m = RUN_RE.exec(f);
    if (m) owners.add(Number(m[1]));
  }
  for (const ns of (await run('ip', ['netns', 'list'])).stdout.split('\n')) {
    const m = /^vmfleet-(\d+)/.exec(ns);
    if (m) owners.add(Number(m[1]));
  }
  for (const pid of owners) if (!isAlive(pid)) destroySync(stateOf(pid), true);
  // Killed containers release their cgroups a moment later.
  await sleep(owners.size > 0 ? 200 : 0);
  for (const pid of owners) if (!isAlive(pid)) removeCgroups(stateOf(pid).cgroup);
}

// Runs of this process not torn down yet (by state dir); the exit hook re-reads their state, which grows as hosts boot.
const live = new Set<string>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    if (live.size > 0) destroySync(stateOf(process.pid), false);
  });
  // A signal ends Node without 'exit': turn it into an exit so the hook runs.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const LAUNCH = `cg=$1; shift
for root in ${CGROUP_ROOTS.join(' ')}; do mkdir -p "$root/$cg" && echo $$ > "$root/$cg/cgroup.procs" || exit 97; done
exec "$@"`;

export async function createFleet(opts: FleetOptions): Promise<Fleet> {
  requireFleetTools();
  const log = opts.log ?? (() => {});
  if (opts.hosts.length < 1 || opts.hosts.length > 200) throw new Error(`hosts: want 1..200, got ${opts.hosts.length}`);
  for (const h of opts.hosts) if (!/^[a-z][a-z0-9-]{0,30}$/.test(h)) throw new Error(`host name "${h}": want [a-z][a-z0-9-]*`);
  await removeDeadRuns();
  const st = stateOf(process.pid);
  if (live.has(st.dir) || existsSync(st.dir))
    throw new Error(`a fleet of process ${process.pid} already exists (${st.dir}): one per process`);
  const id = `vmesh-fleet-${process.pid}`;
  const bridge = `vmf${process.pid}`;
  const sshKey = join(st.dir, 'id_ed25519');
  const sshOptions = [
    '-i',
    sshKey,
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'ConnectTimeout=5',
  ];
  const procs: ChildProcess[] = [];
  const outputs = new Map<string, string>();
  live.add(st.dir);
  hookExit();
  const inNet = (cmd: string, args: string[], o?: RunOptions) => run('nsenter', [`--net=/run/netns/${st.netns}`, cmd, ...args], o);

  let torn: Promise<void> | undefined;
  const teardown = (): Promise<void> => {
    torn ??= (async () => {
      // SIGTERM makes nspawn power the container off cleanly (a couple of seconds); what lingers is killed.
      for (const p of procs) if (p.exitCode === null && p.pid) killQuietly(p.pid, 'SIGTERM');
      const until = Date.now() + 10_000;
      while (procs.some((p) => p.exitCode === null && p.signalCode === null) && Date.now() < until) await sleep(100);
      const again = stateOf(process.pid);
      for (const pid of again.pids) if (ownsPid(pid, again)) killQuietly(pid, 'SIGKILL');
      const killed = Date.now() + 5000;
      while (procs.some((p) => p.exitCode === null && p.signalCode === null) && Date.now() < killed) await sleep(50);
      for (const m of again.merged) {
        if (!isMounted(m)) continue;
        const r = await run('umount', [m]);
        if (r.code !== 0) await run('umount', ['-l', m]);
      }
      await run('ip', ['-n', st.netns, 'link', 'del', bridge]);
      await run('ip', ['netns', 'del', st.netns]);
      // A killed container's cgroups empty a moment after its processes are gone.
      for (let i = 0; i < 20 && removeCgroups(st.cgroup) > 0; i++) await sleep(100);
      if (again.merged.every((m) => !isMounted(m))) await run('rm', ['-rf', '--one-file-system', st.dir]);
      live.delete(st.dir);
    })();
    return torn;
  };

  const hosts: FleetHost[] = [];
  try {
    mkdirSync(join(st.dir, 'hosts'), { recursive: true, mode: 0o700 });
    await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', id, '-f', sshKey]);
    const pubKey = readFileSync(`${sshKey}.pub`, 'utf8');

    await runOk('ip', ['netns', 'add', st.netns]);
    const nsExec = (args: string[]) => runOk('ip', ['-n', st.netns, ...args]);
    await nsExec(['link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0', 'mcast_snooping', '0']);
    // Bridged frames stay out of the namespace's netfilter (br_netfilter is on by default here).
    await runOk('nsenter', [
      `--net=/run/netns/${st.netns}`,
      'sh',
      '-c',
      'for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e "$f" ] && echo 0 > "$f"; done; ' +
        'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; true',
    ]);
    await nsExec(['addr', 'add', `${BRIDGE_ADDRESS}/24`, 'dev', bridge]);
    await nsExec(['link', 'set', 'lo', 'up']);
    await nsExec(['link', 'set', bridge, 'up']);

    const pidsFile = join(st.dir, 'pids');
    writeFileSync(pidsFile, '');
    const recordPid = (pid: number) => writeFileSync(pidsFile, `${readFileSync(pidsFile, 'utf8')}${pid}\n`);

    opts.hosts.forEach((name, i) => {
      const ip = `${FLEET_PREFIX}.${i + 1}`;
      const machine = `f${process.pid}-${i + 1}`;
      const ssh = (command: string, o?: RunOptions) => inNet('ssh', [...sshOptions, `root@${ip}`, command], o);
      const sshOk = async (command: string, o?: RunOptions) => {
        const r = await ssh(command, o);
        if (r.code !== 0) throw new Error(describeFailure(`ssh ${name}`, [command], r));
        return r.stdout;
      };
      hosts.push({
        name,
        ip,
        machine,
        ssh,
        sshOk,
        diagnose: async (unit) => {
          const r = await ssh(`systemctl status --no-pager -l ${unit} 2>&1 | head -40; journalctl --no-pager -n 60 -u ${unit} 2>&1`, {
            timeoutMs: 15_000,
          });
          return `--- ${name}: ${unit}\n${r.stdout}${r.stderr}`;
        },
      });
    });

    await Promise.all(
      hosts.map(async (h) => {
        const base = join(st.dir, 'hosts', h.name);
        const [upper, work, merged] = ['upper', 'work', 'merged'].map((d) => join(base, d)) as [string, string, string];
        for (const d of [upper, work, merged]) mkdirSync(d, { recursive: true });
        await runOk('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${opts.rootfs},upperdir=${upper},workdir=${work}`, merged]);
        // What makes each clone a host of its own: name, machine-id, ssh host key, address, resolver, root's key.
        const at = (p: string) => join(merged, p);
        writeFileSync(at('etc/hostname'), `${h.name}\n`);
        writeFileSync(at('etc/hosts'), `127.0.0.1 localhost\n127.0.1.1 ${h.name}\n`);
        writeFileSync(at('etc/machine-id'), `${randomBytes(16).toString('hex')}\n`);
        await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', h.name, '-f', at('etc/ssh/ssh_host_ed25519_key')]);
        mkdirSync(at('root/.ssh'), { recursive: true, mode: 0o700 });
        writeFileSync(at('root/.ssh/authorized_keys'), pubKey, { mode: 0o600 });
        mkdirSync(at('etc/systemd/network'), { recursive: true });
        writeFileSync(
          at('etc/systemd/network/10-host0.network'),
          `[Match]\nName=host0\n\n[Network]\nAddress=${h.ip}/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n`,
        );
        // An on-link resolver address, as a real host has; nothing answers there but the agent's captured DNS.
        rmSync(at('etc/resolv.conf'), { force: true });
        writeFileSync(at('etc/resolv.conf'), `nameserver ${BRIDGE_ADDRESS}\noptions timeout:1 attempts:2\n`, { mode: 0o644 });
        const args = [
          '-D',
          merged,
          '-M',
          h.machine,
          '-b',
          '--register=no',
          '--keep-unit',
          `--network-bridge=${bridge}`,
          '--console=passive',
          '--resolv-conf=off',
          '--timezone=off',
          '--link-journal=no',
          ...(opts.bindReadOnly ?? []).map((p) => `--bind-ro=${p}`),
        ];
        const child = spawn(
          'sh',
          ['-c', LAUNCH, 'sh', `${st.cgroup}/${h.name}`, 'nsenter', `--net=/run/netns/${st.netns}`, 'systemd-nspawn', ...args],
          { env: ENV, stdio: ['ignore', 'pipe', 'pipe'], detached: false },
        );
        procs.push(child);
        if (child.pid) recordPid(child.pid);
        let out = '';
        const keep = (d: Buffer) => {
          out = (out + d.toString()).slice(-20_000);
          outputs.set(h.name, out);
        };
        child.stdout?.on('data', keep);
        child.stderr?.on('data', keep);
        child.unref();
        (child.stdout as { unref?(): void } | null)?.unref?.();
        (child.stderr as { unref?(): void } | null)?.unref?.();
        log(`booting ${h.name} (${h.ip}) as ${h.machine}`);
        await waitBooted(h, child, () => outputs.get(h.name) ?? '', opts.bootTimeoutMs ?? 90_000);
        // The container's PID 1, so even a killed launcher leaves nothing running behind it.
        for (const c of childPids(child.pid ?? -1)) recordPid(c);
      }),
    );
  } catch (err) {
    await teardown();
    throw err;
  }
  return {
    id,
    netns: st.netns,
    bridge,
    dir: st.dir,
    sshKey,
    sshOptions,
    hosts,
    inNet,
    teardown,
    host: (name) => {
      const h = hosts.find((x) => x.name === name);
      if (!h) throw new Error(`fleet ${id} has no host ${name} (hosts: ${hosts.map((x) => x.name).join(', ')})`);
      return h;
    },
  };
}

/** Until sshd answers and systemd says the boot finished; a degraded boot fails with the units that failed. */
async function waitBooted(h: FleetHost, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${h.name}: systemd-nspawn exited (${child.exitCode ?? child.signalCode}) while booting:\n${output().slice(-3000)}`);
    const r = await h.ssh('systemctl is-system-running --wait', { timeoutMs: Math.max(1000, deadline - Date.now()) });
    const state = r.stdout.trim();
    if (state === 'running') return;
    if (state === 'degraded') {
      const failed = await h.ssh('systemctl --failed --no-legend --no-pager', { timeoutMs: 10_000 });
      throw new Error(`${h.name}: booted degraded; failed units:\n${failed.stdout}`);
    }
    if (Date.now() > deadline)
      throw new Error(`${h.name}: not booted after ${timeoutMs} ms (last: ${state} ${r.stderr.trim()}):\n${output().slice(-3000)}`);
    await sleep(200);
  }
}
