import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../lib/logger.js';
import type { SecretInput } from '../../xds/index.js';
import { parseFileSecretName } from '../compile/tls.js';

/** Istio's gateway credentialName, on a VM: a directory per credential with Kubernetes' TLS secret file names. */
export const CREDENTIAL_PREFIX = 'file-cert:';
const CA_SUFFIX = '-cacert';

/**
 * The secrets a config names that live in files on this host: `file:` names (certificate/key paths in the
 * config) and `file-cert:<credentialName>` (`<dir>/<name>/tls.crt`, `tls.key`; `-cacert`: `ca.crt`). The agent
 * reads them (as root) and serves them to its unprivileged proxy over SDS; unreadable ones are logged and left out.
 */
export async function readFileSecrets(names: Iterable<string>, credentialsDir: string, logger: Logger): Promise<SecretInput[]> {
  const out: SecretInput[] = [];
  for (const name of names) {
    try {
      const files = parseFileSecretName(name);
      if (files) {
        const cert = await readFile(files.certPath, 'utf8');
        out.push(
          files.keyPath
            ? { name, kind: 'certificate', certChainPem: cert, keyPem: await readFile(files.keyPath, 'utf8') }
            : { name, kind: 'trust', trustedCaPem: cert },
        );
      } else if (name.startsWith(CREDENTIAL_PREFIX)) {
        const credential = name.slice(CREDENTIAL_PREFIX.length);
        if (credential.includes('/') || credential.startsWith('.')) throw new Error(`credential name "${credential}" is not a plain name`);
        if (credential.endsWith(CA_SUFFIX)) {
          const dir = join(credentialsDir, credential.slice(0, -CA_SUFFIX.length));
          out.push({ name, kind: 'trust', trustedCaPem: await readFile(join(dir, 'ca.crt'), 'utf8') });
        } else {
          const dir = join(credentialsDir, credential);
          out.push({
            name,
            kind: 'certificate',
            certChainPem: await readFile(join(dir, 'tls.crt'), 'utf8'),
            keyPem: await readFile(join(dir, 'tls.key'), 'utf8'),
          });
        }
      }
    } catch (e) {
      logger.warn({ secret: name, err: (e as Error).message }, 'secret file unreadable: chains that use it cannot serve TLS');
    }
  }
  return out;
}
