/**
 * Freezes an object and everything it holds. In a file of its own, apart from sources.ts: the proxy worker's
 * config needs it, and sources.ts brings the YAML parser along, which a worker never uses (72 modules).
 */
export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
