import { cpuUsage, memoryUsage } from 'node:process';
import type { MetricsRegistry } from './metrics-registry.js';

/** The process gauges every Prometheus client library exports (the control-plane dashboard's CPU and memory panels). */
export function processMetrics(registry: MetricsRegistry): void {
  const started = Math.floor((Date.now() - process.uptime() * 1000) / 1000);
  registry.gauge('process_cpu_seconds_total', 'User and system CPU seconds spent', [], () => {
    const u = cpuUsage();
    return [[[], (u.user + u.system) / 1e6]];
  });
  registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes', [], () => [[[], memoryUsage.rss()]]);
  registry.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds', [], () => [[[], started]]);
  registry.gauge('nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes', [], () => [[[], memoryUsage().heapUsed]]);
}
