// The registry moved to src/lib/metrics-registry.ts (the controller's layers count too). This re-export keeps the
// agent's proxy-workers.ts, which another change owns right now, compiling; point it at lib and delete this file.
export type { MetricsSnapshot } from '../../lib/metrics-registry.js';
