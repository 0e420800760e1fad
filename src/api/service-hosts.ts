import { DEFAULT_MESH_CONFIG, type MeshConfig } from './mesh-config.js';

type DomainConfig = Pick<MeshConfig, 'dnsDomain' | 'dnsDomainAliases'>;

function suffixes(mesh: DomainConfig): string[] {
  return [mesh.dnsDomain, ...mesh.dnsDomainAliases].map((d) => d.toLowerCase());
}

/** Replaces an alias suffix (e.g. `svc.cluster.local`) with the mesh domain; undefined when `name` has none. */
function underMeshDomain(name: string, mesh: DomainConfig): { rest: string } | undefined {
  for (const s of suffixes(mesh)) {
    if (name.endsWith(`.${s}`)) return { rest: name.slice(0, -(s.length + 1)) };
  }
  return undefined;
}

/**
 * The one spelling of a host that vmesh compares and indexes by.
 *
 * - short names resolve in the caller's namespace: `reviews` -> `reviews.<ns>.mesh`, `reviews.prod` -> `reviews.prod.mesh`
 *   (a name of one or two labels is short);
 * - a name under the mesh domain or an alias is rewritten to the mesh domain:
 *   `reviews.prod.svc.cluster.local` -> `reviews.prod.mesh`, `*.prod.svc.cluster.local` -> `*.prod.mesh`;
 * - a partial wildcard (`*db.prod.svc.cluster.local`, `*x`) is never short: its rest is rewritten as above, or kept;
 * - anything else (`api.example.com`, `db.internal.corp`, `*`, `*.example.com`, IPs) is external and kept;
 * - always lowercase, without a trailing dot.
 */
export function canonicalHost(host: string, callerNamespace: string, mesh: DomainConfig): string {
  const h = host.trim().toLowerCase().replace(/\.$/, '');
  if (h === '*' || h === '' || h.includes(':')) return h;
  const domain = mesh.dnsDomain.toLowerCase();
  if (h.startsWith('*.')) {
    const under = underMeshDomain(h.slice(2), mesh);
    if (under) return `*.${under.rest}.${domain}`;
    const s = suffixes(mesh).find((x) => h.slice(2) === x);
    return s ? `*.${domain}` : h;
  }
  if (h.startsWith('*')) {
    const dot = h.indexOf('.');
    const under = dot < 0 ? undefined : underMeshDomain(h.slice(dot + 1), mesh);
    return under ? `${h.slice(0, dot)}.${under.rest}.${domain}` : h;
  }
  if (/^\d+(\.\d+){3}$/.test(h)) return h;
  const labels = h.split('.');
  if (labels.length === 1) return `${h}.${callerNamespace.toLowerCase()}.${domain}`;
  if (labels.length === 2) return `${h}.${domain}`;
  const under = underMeshDomain(h, mesh);
  return under ? `${under.rest}.${domain}` : h;
}

/**
 * Whether `host` names (or, as a wildcard, matches) services of the mesh rather than external ones:
 * short names, and names under the mesh domain or one of its aliases. `*` matches everything and is not one.
 */
export function isMeshHost(host: string, mesh: DomainConfig): boolean {
  const h = host.trim().toLowerCase().replace(/\.$/, '');
  if (h === '*' || h === '' || h.includes(':') || /^\d+(\.\d+){3}$/.test(h)) return false;
  // A wildcard's rest: `*.a.b` and `*db.a.b` both stand for names under `a.b`.
  const name = h.startsWith('*') ? h.slice(h.indexOf('.') + 1 || h.length) : h;
  if (suffixes(mesh).includes(name)) return true;
  if (!h.startsWith('*') && name.split('.').length <= 2) return true;
  return underMeshDomain(name, mesh) !== undefined;
}

/**
 * The service name and namespace of a canonical mesh host (`reviews.prod.mesh` -> reviews, prod);
 * undefined for external hosts and wildcards.
 */
export function splitMeshHost(
  host: string,
  mesh: Pick<MeshConfig, 'dnsDomain'> = DEFAULT_MESH_CONFIG,
): { name: string; namespace: string } | undefined {
  const suffix = `.${mesh.dnsDomain.toLowerCase()}`;
  if (!host.endsWith(suffix) || host.includes('*')) return undefined;
  const labels = host.slice(0, -suffix.length).split('.');
  const [name, namespace] = labels;
  if (labels.length !== 2 || !name || !namespace) return undefined;
  return { name, namespace };
}

/**
 * Whether `pattern` (a canonical host, possibly `*`, `*.suffix` or a partial wildcard `*db.suffix`) matches the
 * canonical host `host`, as Envoy's suffix wildcards do: the `*` stands for at least one character. A wildcard
 * `host` matches when every name it stands for does.
 */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*' || pattern === host) return true;
  if (pattern.startsWith('*')) {
    const suffix = pattern.slice(1);
    if (host.startsWith('*')) return host !== '*' && host.slice(1).endsWith(suffix);
    return host.length > suffix.length && host.endsWith(suffix);
  }
  return false;
}
