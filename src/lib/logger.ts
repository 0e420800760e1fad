import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export interface LoggerOptions {
  readonly level?: LevelWithSilent;
  /** Component name, e.g. `capture` or `xds`; becomes the `component` field on every line. */
  readonly component?: string;
  /** Where JSON lines go; stderr by default so command output on stdout stays machine-readable. */
  readonly destination?: NodeJS.WritableStream;
}

/** The one logger factory: every component logs JSON lines through pino with the same base fields. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = opts.destination ?? pino.destination({ fd: 2, sync: true });
  // Children name their component (`logger.child({ component: 'ca' })`); a root given one keeps it.
  const base = opts.component ? { component: opts.component } : {};
  return pino({ level: opts.level ?? 'info', base, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/**
 * Access logs: JSON lines on stdout with Envoy's fields (each entry carries its own `start_time`, so no pino time,
 * pid or hostname; pino keeps its `level`), written asynchronously so a request never waits for the terminal or journald.
 */
export function createAccessLogger(destination?: NodeJS.WritableStream): Logger {
  const dest = destination ?? pino.destination({ fd: 1, sync: false });
  return pino({ base: { log: 'access' }, timestamp: false }, dest);
}
