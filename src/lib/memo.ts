/**
 * The value cached for `owner` (and `key`), made by `make` on first use. For work derived from an immutable
 * object (a translation input, a model generation): the cache goes when the object does.
 */
export function memoOn<O extends object, V>(cache: WeakMap<O, V>, owner: O, make: () => V): V {
  let v = cache.get(owner);
  if (v === undefined) {
    v = make();
    cache.set(owner, v);
  }
  return v;
}

export function memoOnKey<O extends object, K, V>(cache: WeakMap<O, Map<K, V>>, owner: O, key: K, make: () => V): V {
  const byKey = memoOn(cache, owner, () => new Map<K, V>());
  let v = byKey.get(key);
  if (v === undefined) {
    v = make();
    byKey.set(key, v);
  }
  return v;
}
