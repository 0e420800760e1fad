// Runs ansible/site.yml against a fleet over ssh, from inside the fleet's network namespace, and reads the recap.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fleet } from './fleet.js';

const ANSIBLE_DIR = join(import.meta.dirname, '..', '..', 'ansible');

export interface Recap {
  ok: number;
  changed: number;
  unreachable: number;
  failed: number;
}
export interface PlaybookRun {
  code: number | null;
  output: string;
  recap: Record<string, Recap>;
  ms: number;
}

/** Inventory in the example's shape: the first host is the controller, the others are agents. */
export function writeInventory(fleet: Fleet, controller: string, agents: readonly string[]): string {
  const c = fleet.host(controller);
  const lines = [
    '[vmesh_controllers]',
    `${c.name} ansible_host=${c.ip}`,
    '',
    '[vmesh_agents]',
    ...agents.map((a) => `${a} ansible_host=${fleet.host(a).ip}`),
    '',
    '[all:vars]',
    `vmesh_controller_address=${c.ip}`,
    'ansible_user=root',
    `ansible_ssh_private_key_file=${fleet.sshKey}`,
    'ansible_python_interpreter=/usr/bin/python3',
    '',
  ];
  const file = join(fleet.dir, 'inventory.ini');
  writeFileSync(file, lines.join('\n'));
  return file;
}

function parseRecap(output: string): Record<string, Recap> {
  const recap: Record<string, Recap> = {};
  const at = output.lastIndexOf('PLAY RECAP');
  if (at < 0) return recap;
  for (const line of output.slice(at).split('\n')) {
    const m = /^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/.exec(line);
    if (m?.[1]) recap[m[1]] = { ok: Number(m[2]), changed: Number(m[3]), unreachable: Number(m[4]), failed: Number(m[5]) };
  }
  return recap;
}

export async function runPlaybook(fleet: Fleet, inventory: string, release: string, timeoutMs = 240_000): Promise<PlaybookRun> {
  const home = join(fleet.dir, 'ansible');
  mkdirSync(home, { recursive: true });
  const env = {
    ANSIBLE_HOME: home,
    ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
    ANSIBLE_CONTROL_PATH_DIR: join(home, 'cp'),
    ANSIBLE_HOST_KEY_CHECKING: 'False',
    ANSIBLE_PIPELINING: 'True',
    // Short-lived masters: they also end when the hosts power off.
    ANSIBLE_SSH_ARGS: `-o ControlMaster=auto -o ControlPersist=30s -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10`,
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_FORKS: '10',
    NO_COLOR: '1',
  };
  const t0 = Date.now();
  const r = await fleet.inNet('ansible-playbook', ['-i', inventory, join(ANSIBLE_DIR, 'site.yml'), '-e', `vmesh_release=${release}`], {
    env,
    timeoutMs,
    cwd: ANSIBLE_DIR,
  });
  const output = `${r.stdout}${r.stderr}${r.timedOut ? `\n(ansible-playbook timed out after ${timeoutMs} ms)` : ''}`;
  return { code: r.code, output, recap: parseRecap(output), ms: Date.now() - t0 };
}
