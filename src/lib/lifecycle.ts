import type { Logger } from './logger.js';

/**
 * One part of a program with a life: started once, stopped once. A program is a list of these, and the list is
 * its start order; it stops in the reverse order, so what starts last (what serves) stops first.
 */
export interface Component {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A component from two functions; either may be left out when that side has nothing to do. */
export function component(name: string, parts: { start?: () => unknown; stop?: () => unknown }): Component {
  return {
    name,
    start: async () => {
      await parts.start?.();
    },
    stop: async () => {
      await parts.stop?.();
    },
  };
}

export interface LifecycleOptions {
  /** How long one component's stop may take before the rest are stopped without it (10 s by default). */
  readonly stopDeadlineMs?: number;
}

/** Started components, stopped together; stop() may be called any number of times and stops once. */
export interface Running {
  stop(): Promise<void>;
}

/**
 * Starts the components in order. When one fails, those already started are stopped in reverse and its error is
 * rethrown: a failed start leaves nothing behind.
 */
export async function startAll(components: readonly Component[], log: Logger, opts: LifecycleOptions = {}): Promise<Running> {
  const started: Component[] = [];
  for (const c of components) {
    try {
      await c.start();
    } catch (e) {
      log.debug({ component: c.name }, 'start failed: stopping what started');
      await stopAll(started, log, opts);
      throw e;
    }
    started.push(c);
  }
  let stopped: Promise<void> | undefined;
  return {
    stop: () => {
      stopped ??= stopAll(started, log, opts);
      return stopped;
    },
  };
}

/**
 * Stops the components in reverse order. A stop that throws or outlives its deadline is logged and left behind so
 * the rest still stop; this never throws.
 */
export async function stopAll(started: readonly Component[], log: Logger, opts: LifecycleOptions = {}): Promise<void> {
  const deadlineMs = opts.stopDeadlineMs ?? 10_000;
  for (const c of [...started].reverse()) {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), deadlineMs);
    });
    // A stop that fails after its deadline is still logged, never left as an unhandled rejection.
    const stopping = Promise.resolve()
      .then(() => c.stop())
      .then(
        () => 'stopped' as const,
        (e: unknown) => {
          log.warn({ err: e, component: c.name }, 'error while stopping');
          return 'failed' as const;
        },
      );
    const r = await Promise.race([stopping, late]);
    clearTimeout(timer);
    if (r === 'late') log.warn({ component: c.name, deadlineMs }, 'stop outlived its deadline: going on without it');
  }
}
