/**
 * Istio's routing on JWT claims: a VirtualService header named `@request.auth.claims.a.b` or
 * `@request.auth.claims[a][b]` is the verified token's claim `a.b` (nested by path), not a request header.
 * Returns the claim path, `[]` for a name with the prefix that names no claim, undefined for other names.
 */
export function routingClaim(name: string): string[] | undefined {
  const prefix = '@request.auth.claims';
  if (!name.toLowerCase().startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  let parts: string[] = [];
  if (rest.startsWith('.') && rest.length > 1) parts = rest.slice(1).split('.');
  else if (rest.startsWith('[') && rest.endsWith(']') && rest.length > 2) parts = rest.slice(1, -1).split('][');
  return parts.some((x) => x === '' || /[[\]]/.test(x)) ? [] : parts;
}
