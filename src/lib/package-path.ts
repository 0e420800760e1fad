import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, vmeshError } from './errors.js';

const found = new Map<string, string>();

/**
 * Absolute path of a file shipped under the package's src/ (tsc copies only .ts, and the release tarball carries
 * src's other files): tsx runs (src/...) and built runs (dist/src/...) both find it from the package root.
 */
export function packagePath(...relative: string[]): string {
  const key = relative.join('/');
  const hit = found.get(key);
  if (hit) return hit;
  const start = dirname(fileURLToPath(import.meta.url));
  let dir = start;
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, ...relative))) {
    const up = dirname(dir);
    if (up === dir) throw vmeshError(ErrorCode.Internal, `cannot find ${join(...relative)} above ${start}`);
    dir = up;
  }
  const path = join(dir, ...relative);
  found.set(key, path);
  return path;
}
