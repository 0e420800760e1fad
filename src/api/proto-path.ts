import { packagePath } from '../lib/package-path.js';

/** Absolute path of vmesh's own .proto directory (`<package root>/src/api/proto`). */
export function protoDir(): string {
  return packagePath('src', 'api', 'proto');
}
