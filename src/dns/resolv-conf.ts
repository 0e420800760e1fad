import { readFile } from 'node:fs/promises';

export interface ResolvConf {
  readonly nameservers: readonly string[];
  readonly search: readonly string[];
}

/** The host's resolvers and search list (resolv.conf(5)); the DNS proxy forwards what it does not own. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') search = rest;
  }
  return { nameservers: nameservers.length > 0 ? nameservers : ['127.0.0.1'], search };
}

export async function readResolvConf(path = '/etc/resolv.conf'): Promise<ResolvConf> {
  try {
    return parseResolvConf(await readFile(path, 'utf8'));
  } catch {
    return { nameservers: ['127.0.0.1'], search: [] };
  }
}
