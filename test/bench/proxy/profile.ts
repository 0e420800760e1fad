// Reads the agents' --cpu-prof output: where the proxy process spends its samples, by function and by file.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  startTime: number;
  endTime: number;
}
export interface ProfileCost {
  readonly name: string;
  readonly percent: number;
}
export interface ProfileSummary {
  readonly file: string;
  readonly seconds: number;
  readonly busySamples: number;
  readonly topFunctions: readonly ProfileCost[];
  readonly topFiles: readonly ProfileCost[];
}

const ROOT = join(import.meta.dirname, '..', '..', '..');

function where(url: string): string {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '');
  return path.startsWith('/') ? relative(ROOT, path) : path;
}

export function summarizeProfiles(dir: string, top = 25, minBusySamples = 1000): ProfileSummary[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return [];
  }
  return (
    files
      .map((f) => {
        const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile;
        const byId = new Map(p.nodes.map((n) => [n.id, n]));
        const fn = new Map<string, number>();
        const file = new Map<string, number>();
        let busy = 0;
        for (const id of p.samples) {
          const n = byId.get(id);
          // Idle samples would drown the rest: percentages are of the samples where the process was running.
          if (!n || n.callFrame.functionName === '(idle)') continue;
          busy++;
          const { functionName, url, lineNumber } = n.callFrame;
          const w = where(url);
          const key = `${functionName || '(anonymous)'} ${w}${url ? `:${lineNumber + 1}` : ''}`;
          fn.set(key, (fn.get(key) ?? 0) + 1);
          file.set(w, (file.get(w) ?? 0) + 1);
        }
        const total = busy || 1;
        const rank = (m: Map<string, number>) =>
          [...m.entries()]
            .sort((a, b) => b[1] - a[1])
            .slice(0, top)
            .map(([name, n]) => ({ name, percent: Number(((100 * n) / total).toFixed(1)) }));
        return {
          file: join(dir, f),
          seconds: (p.endTime - p.startTime) / 1e6,
          busySamples: busy,
          topFunctions: rank(fn),
          topFiles: rank(file),
        };
      })
      // The tsx loader runs in a worker thread with its own profile, idle after startup: keep the busy one(s).
      .filter((s) => s.busySamples >= minBusySamples)
  );
}
