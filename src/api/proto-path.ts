import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, vmeshError } from '../lib/errors.js';

const MARKER = join('src', 'api', 'proto', 'vmesh', 'v1', 'controller.proto');
let cached: string | undefined;

/**
 * Absolute path of vmesh's own .proto directory (`<package root>/src/api/proto`). tsc does not copy .proto
 * files, so both tsx runs (src/api) and built runs (dist/src/api) resolve it from the package root.
 */
export function protoDir(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, MARKER))) {
    const up = dirname(dir);
    if (up === dir) throw vmeshError(ErrorCode.Internal, `cannot find ${MARKER} above ${dirname(fileURLToPath(import.meta.url))}`);
    dir = up;
  }
  cached = join(dir, 'src', 'api', 'proto');
  return cached;
}
