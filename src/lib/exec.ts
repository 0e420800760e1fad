import { spawn } from 'node:child_process';
import { ErrorCode, vmeshError } from './errors.js';

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a system tool to completion with optional stdin. A missing binary becomes VMESH_ERR_MISSING_TOOL
 * naming the Debian package that provides it; a non-zero exit is returned, not thrown.
 */
export function execTool(
  cmd: string,
  args: readonly string[],
  opts: { input?: string; debianPackage?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 30_000 });
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => errOut.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        const pkg = opts.debianPackage ? `: install the Debian package ${opts.debianPackage}` : '';
        reject(vmeshError(ErrorCode.MissingTool, `${cmd} not found${pkg}`));
      } else reject(e);
    });
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(errOut).toString('utf8');
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
    child.stdin.on('error', () => {
      // The tool may exit before reading stdin; its exit code says what went wrong.
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Whether a tool is on PATH, without running it. */
export async function hasTool(cmd: string): Promise<boolean> {
  const { access, constants } = await import('node:fs/promises');
  // System tools live in the standard directories; config, not PATH, decides anything else.
  const dirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  for (const d of dirs) {
    try {
      await access(`${d}/${cmd}`, constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}
