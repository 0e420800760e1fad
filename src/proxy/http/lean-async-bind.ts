import { AsyncResource } from 'node:async_hooks';

type Bind = (this: AsyncResource, fn: (...args: unknown[]) => unknown, thisArg?: unknown) => (...args: unknown[]) => unknown;

const original = AsyncResource.prototype.bind as unknown as Bind;
let installed = false;

/** `fn` run in `resource`'s async scope with the caller's `this` (a returned function: no per-call naming helper under tsx). */
function inScope(resource: AsyncResource, fn: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  return function (this: unknown, ...args: unknown[]) {
    return resource.runInAsyncScope(fn, this, ...args);
  };
}

/**
 * Node 20's ClientHttp2Session#request binds every new stream's start to an AsyncResource, and AsyncResource#bind
 * builds two `deprecate()` wrappers (DEP0172, the `asyncResource` accessor on bound functions) each time: measured
 * at 8-12 % of an h2->h2 proxy's CPU (micro.ts --h2 profile), the largest single cost of an upstream HTTP/2 stream.
 * This bind does the same (runs `fn` in the resource's async scope, keeps `length` and the `asyncResource` accessor)
 * without building the warning wrappers: only the DEP0172 warning on that accessor is gone. Installed once, by the
 * first upstream HTTP/2 session, and only over Node's own bind (never over someone else's replacement).
 */
export function installLeanAsyncBind(): void {
  if (installed || (AsyncResource.prototype.bind as unknown as Bind) !== original) return;
  installed = true;
  const lean: Bind = function bind(this: AsyncResource, fn, thisArg) {
    // Node's own validation and error for a non-function.
    if (typeof fn !== 'function') return original.call(this, fn, thisArg);
    // As Node's: the accessor can be reassigned, the bound function keeps running in the resource it was bound to.
    let self = this;
    const bound = thisArg === undefined ? inScope(this, fn) : this.runInAsyncScope.bind(this, fn, thisArg);
    Object.defineProperties(bound, {
      length: { configurable: true, enumerable: false, value: fn.length, writable: false },
      asyncResource: {
        configurable: true,
        enumerable: true,
        get: () => self,
        set: (v: AsyncResource) => {
          self = v;
        },
      },
    });
    return bound;
  };
  AsyncResource.prototype.bind = lean as unknown as typeof AsyncResource.prototype.bind;
}
