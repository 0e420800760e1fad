// The fleet's shared Debian root file system: debootstrapped once from the machine's own apt mirror, prepared to
// be cloned (no machine-id, no ssh host keys, networkd on), and cached under /var/cache/vmesh-fleet keyed by
// everything that shapes it, so later runs skip the minute of debootstrap. Hosts boot overlays on top of it and
// never write to it.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, run, runOk, sleep } from './exec.js';

export const CACHE_DIR = '/var/cache/vmesh-fleet';
const SUITE = 'bookworm';
const VARIANT = 'minbase';
/** What the hosts need: systemd as PID 1, sshd and python3 for Ansible (python3-apt for its apt module), capture tools. */
export const PACKAGES = [
  'systemd',
  'systemd-sysv',
  'dbus',
  'openssh-server',
  'python3',
  'python3-apt',
  'sudo',
  'iproute2',
  'nftables',
  'libnftables1',
  'iptables',
];
// Bump when prepare() changes what it writes: the cache key covers it.
const PREPARE_VERSION = 1;
const MASKED = ['apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'fstrim.timer', 'systemd-timesyncd.service'];
const BUILD_TIMEOUT_MS = 15 * 60_000;

export function rootfsKey(): string {
  const spec = JSON.stringify({ suite: SUITE, variant: VARIANT, packages: [...PACKAGES].sort(), prepare: PREPARE_VERSION, masked: MASKED });
  return createHash('sha256').update(spec).digest('hex').slice(0, 16);
}

/** The Debian mirror this machine's apt uses for the suite (one-line and deb822 sources); VMESH_FLEET_MIRROR overrides. */
export function debianMirror(): string {
  const override = process.env.VMESH_FLEET_MIRROR;
  if (override) return override;
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const f of readdirSync(dir).sort()) if (/\.(list|sources)$/.test(f)) files.push(join(dir, f));
  for (const file of files) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const fields = new Map<string, string>();
        for (const line of stanza.split('\n')) {
          const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
          if (m?.[1] && m[2] !== undefined) fields.set(m[1].toLowerCase(), m[2].trim());
        }
        if (fields.get('enabled') === 'no') continue;
        const types = (fields.get('types') ?? '').split(/\s+/);
        const suites = (fields.get('suites') ?? '').split(/\s+/);
        const uri = (fields.get('uris') ?? '').split(/\s+/)[0];
        if (types.includes('deb') && suites.includes(SUITE) && uri) return uri;
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m?.[1] && m[2] === SUITE) return m[1];
      }
    }
  }
  throw new Error(`no apt source for Debian ${SUITE} in ${files.join(', ')}: set VMESH_FLEET_MIRROR to a Debian mirror URL`);
}

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Removes a half-built tree; anything debootstrap left mounted inside comes off first, or it is left alone. */
async function removeTree(dir: string): Promise<void> {
  for (const m of mountsUnder(dir)) await run('umount', ['-l', m]);
  if (mountsUnder(dir).length > 0) return;
  await run('rm', ['-rf', '--one-file-system', dir]);
}

async function prepare(root: string): Promise<void> {
  for (const f of readdirSync(join(root, 'etc/ssh'))) if (f.startsWith('ssh_host_')) rmSync(join(root, 'etc/ssh', f));
  writeFileSync(
    join(root, 'etc/ssh/sshd_config.d/vmesh-fleet.conf'),
    'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\nPermitRootLogin prohibit-password\n',
  );
  // Every clone writes its own machine-id; dbus must read that one, not a copy made here.
  writeFileSync(join(root, 'etc/machine-id'), '');
  rmSync(join(root, 'var/lib/dbus/machine-id'), { force: true });
  symlinkSync('/etc/machine-id', join(root, 'var/lib/dbus/machine-id'));
  await runOk('chroot', [root, 'systemctl', 'enable', 'systemd-networkd.service'], { timeoutMs: 60_000 });
  await runOk('chroot', [root, 'systemctl', 'mask', ...MASKED], { timeoutMs: 60_000 });
  for (const f of readdirSync(join(root, 'var/cache/apt/archives')))
    if (f.endsWith('.deb')) rmSync(join(root, 'var/cache/apt/archives', f));
}

/** Trees of other keys (an older package list) go, unless an overlay still has one as its lower layer. */
async function pruneOtherKeys(keep: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  for (const f of readdirSync(CACHE_DIR)) {
    const dir = join(CACHE_DIR, f);
    if (!/^rootfs-[0-9a-f]+$/.test(f) || dir === keep || mounts.includes(`lowerdir=${dir}`)) continue;
    if (existsSync(`${dir}.lock`)) continue;
    await removeTree(dir);
  }
}

/** Path of the cached root file system, built first when missing (about a minute and 320 MB). */
export async function ensureRootfs(log: (line: string) => void = () => {}): Promise<string> {
  const key = rootfsKey();
  const final = join(CACHE_DIR, `rootfs-${key}`);
  if (existsSync(final)) {
    await pruneOtherKeys(final);
    return final;
  }
  mkdirSync(CACHE_DIR, { recursive: true, mode: 0o755 });
  for (const f of readdirSync(CACHE_DIR)) {
    const m = /^build-(\d+)$/.exec(f);
    if (m && !isAlive(Number(m[1]))) await removeTree(join(CACHE_DIR, f));
  }
  // One builder at a time per key; the others wait for its result instead of building the same tree again.
  const lock = join(CACHE_DIR, `rootfs-${key}.lock`);
  const deadline = Date.now() + BUILD_TIMEOUT_MS;
  for (;;) {
    if (existsSync(final)) return final;
    try {
      closeSync(openSync(lock, 'wx'));
      writeFileSync(lock, String(process.pid));
      break;
    } catch {
      const owner = Number(readFileSync(lock, 'utf8').trim() || '0');
      if (owner > 0 && !isAlive(owner)) rmSync(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`timed out waiting for process ${owner} to build ${final}`);
      else await sleep(1000);
    }
  }
  const build = join(CACHE_DIR, `build-${process.pid}`);
  try {
    if (existsSync(final)) return final;
    await removeTree(build);
    const mirror = debianMirror();
    log(`debootstrap ${SUITE} from ${mirror} into ${build} (cached for later runs as ${final})`);
    const args = [`--variant=${VARIANT}`, `--include=${PACKAGES.join(',')}`, SUITE, build, mirror];
    const r = await run('debootstrap', args, { timeoutMs: BUILD_TIMEOUT_MS });
    if (r.code !== 0) {
      const logFile = join(build, 'debootstrap/debootstrap.log');
      const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '';
      throw new Error(
        `debootstrap ${args.join(' ')} failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}):\n${r.stderr.slice(-2000)}\n${tail}`,
      );
    }
    await prepare(build);
    await runOk('mv', ['-T', build, final]);
    await pruneOtherKeys(final);
    return final;
  } finally {
    if (existsSync(build)) await removeTree(build);
    rmSync(lock, { force: true });
  }
}
