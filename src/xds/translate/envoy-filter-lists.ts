import type { Obj, Patch } from './envoy-filter-patch.js';

/**
 * istiod's list operations on filters and routes (ADD, INSERT_FIRST, INSERT_BEFORE, INSERT_AFTER, REPLACE,
 * REMOVE), with its rules for a patch whose match names no element: INSERT_BEFORE goes first, INSERT_AFTER
 * last, REPLACE and REMOVE do nothing. Inserting or replacing acts at the first matching element; REMOVE drops
 * every one. Returns a new list; MERGE is left to the caller.
 */
export function insertAt(list: readonly Obj[], p: Patch, hasMatch: boolean, matches: (x: Obj) => boolean): Obj[] {
  const value = () => structuredClone(p.value ?? {});
  const at = hasMatch ? list.findIndex(matches) : -1;
  switch (p.op) {
    case 'ADD':
      return [...list, value()];
    case 'INSERT_FIRST':
      return [value(), ...list];
    case 'INSERT_BEFORE':
      if (!hasMatch) return [value(), ...list];
      return at < 0 ? [...list] : [...list.slice(0, at), value(), ...list.slice(at)];
    case 'INSERT_AFTER':
      if (!hasMatch) return [...list, value()];
      return at < 0 ? [...list] : [...list.slice(0, at + 1), value(), ...list.slice(at + 1)];
    case 'REPLACE':
      return at < 0 ? [...list] : [...list.slice(0, at), value(), ...list.slice(at + 1)];
    case 'REMOVE':
      return hasMatch ? list.filter((x) => !matches(x)) : [...list];
    default:
      return [...list];
  }
}
