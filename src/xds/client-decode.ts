import { formatError } from '../lib/errors.js';
import { err, ok, type Result } from '../lib/result.js';
import type { DeltaDiscoveryResponseMsg, DiscoveryResponseMsg, ResourceMsg } from './messages.js';
import type { AnyMessage, ProtoRegistry } from './protos.js';
import { NAME_FIELD, RESOURCE_WRAPPER_TYPE_URL, typeLabel } from './type-urls.js';

export interface DecodedResources {
  /** name -> decoded message */
  readonly resources: Map<string, unknown>;
  /** name -> resource version (delta only; '' in SotW) */
  readonly versions: Map<string, string>;
  /** name -> the resource's Any as it arrived, so it can be passed on without encoding it again */
  readonly wire: Map<string, AnyMessage>;
}

/**
 * A SotW response's resources by name. Names come from the message's name field, or from the Resource
 * wrapper for types without one. Resources the client did not ask for are ignored, as the protocol says;
 * a duplicate name or a resource of another type makes the whole response invalid (NACK).
 */
export function decodeSotw(
  reg: ProtoRegistry,
  res: DiscoveryResponseMsg,
  wanted: (name: string) => boolean,
): Result<DecodedResources, string> {
  const typeUrl = res.type_url ?? '';
  const out: DecodedResources = { resources: new Map(), versions: new Map(), wire: new Map() };
  try {
    for (const any of res.resources ?? []) {
      let name: string | undefined;
      let inner: AnyMessage | null | undefined = any;
      if (any.type_url === RESOURCE_WRAPPER_TYPE_URL) {
        const r = reg.decodeAny<ResourceMsg>(any);
        name = r.name;
        inner = r.resource;
        if (!inner) continue; // a TTL heartbeat carries no resource
      }
      if (inner.type_url !== typeUrl) return err(`a ${inner.type_url} resource in a ${typeLabel(typeUrl)} response`);
      const msg = reg.decodeAny(inner);
      const field = NAME_FIELD[typeUrl];
      name ||= field ? String(msg[field] ?? '') : '';
      if (!name) return err(`${typeLabel(typeUrl)} resource without a name`);
      if (out.resources.has(name)) return err(`${typeLabel(typeUrl)} resource "${name}" appears twice in one response`);
      if (!wanted(name)) continue;
      out.resources.set(name, msg);
      out.versions.set(name, '');
      out.wire.set(name, inner);
    }
  } catch (e) {
    return err(formatError(e));
  }
  return ok(out);
}

/** A delta response's upserts; removals are read by the caller from removed_resources. */
export function decodeDelta(reg: ProtoRegistry, res: DeltaDiscoveryResponseMsg): Result<DecodedResources, string> {
  const typeUrl = res.type_url ?? '';
  const out: DecodedResources = { resources: new Map(), versions: new Map(), wire: new Map() };
  try {
    for (const r of res.resources ?? []) {
      const name = r.name ?? '';
      if (!name) return err(`${typeLabel(typeUrl)} resource without a name`);
      if (!r.resource) continue; // a TTL heartbeat carries no resource
      if (r.resource.type_url !== typeUrl) return err(`a ${r.resource.type_url} resource in a ${typeLabel(typeUrl)} response`);
      if (out.resources.has(name)) return err(`${typeLabel(typeUrl)} resource "${name}" appears twice in one response`);
      out.resources.set(name, reg.decodeAny(r.resource));
      out.versions.set(name, r.version ?? '');
      out.wire.set(name, r.resource);
    }
  } catch (e) {
    return err(formatError(e));
  }
  return ok(out);
}

export function deltaRemovals(res: DeltaDiscoveryResponseMsg): string[] {
  const names = [...(res.removed_resources ?? [])];
  for (const r of res.removed_resource_names ?? []) if (r.name) names.push(r.name);
  return [...new Set(names)];
}
