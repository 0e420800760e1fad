import { existsSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, vmeshError } from '../lib/errors.js';

/**
 * Refuses a data directory others could tamper with or read the keys of, as sshd refuses loose key files: the
 * directory (and its ca/ folder) writable by group or others, or a private key or the admin token readable by
 * them. The fix is named in the error; nothing is changed behind the operator's back.
 */
export function checkDataDirModes(dataDir: string): void {
  const loose = (path: string, mask: number, what: string, fix: string) => {
    let mode: number;
    try {
      mode = statSync(path).mode & 0o777;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    if ((mode & mask) !== 0) {
      throw vmeshError(
        ErrorCode.InvalidConfig,
        `${path} has mode ${mode.toString(8).padStart(4, '0')}: ${what}; fix it with: chmod ${fix} ${path}`,
        { path, mode },
      );
    }
  };
  for (const dir of [dataDir, join(dataDir, 'ca')]) loose(dir, 0o022, 'group or others may write in it', 'go-w');
  for (const f of ['admin-token', 'state.json', 'state.journal', 'ca/ca-key.pem', 'ca/ca-next-key.pem']) {
    loose(join(dataDir, f), 0o077, 'group or others may read or write it', '0600');
  }
}

/**
 * A data dir with a CA (or admin token) from an earlier run but no state.json has lost its hosts, tokens and
 * config: starting empty would silently forget them (every host's next Renew would fail). Refused unless the
 * operator says `--fresh-state`.
 */
export function checkStateNotLost(dataDir: string, freshState: boolean | undefined): void {
  const state = join(dataDir, 'state.json');
  if (existsSync(state)) return;
  const journal = join(dataDir, 'state.journal');
  if (freshState) {
    // The journal's records extend the lost snapshot: alone they are not a state. Kept aside, not deleted.
    if (existsSync(journal)) renameSync(journal, `${journal}.without-snapshot-${Date.now()}`);
    return;
  }
  const earlier = ['state.journal', 'ca/ca-cert.pem', 'admin-token'].map((f) => join(dataDir, f)).find((f) => existsSync(f));
  if (earlier) {
    throw vmeshError(
      ErrorCode.StoreFailed,
      `${state} is missing but ${earlier} is there from an earlier run: the controller's hosts, tokens and config would be lost; restore state.json, or start once with --fresh-state to begin empty (hosts must then join again)`,
    );
  }
}
