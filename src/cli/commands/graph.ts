import type { CommandModule } from 'yargs';
import { meshGraph } from '../../api/http/graph.js';
import { apiClient, apiFlags } from '../api.js';
import { emit, type OutputFormat, outputOption, table } from '../output.js';

type Argv = Record<string, unknown> & { output: OutputFormat };

/** `workload:default/reviews-v1` -> `reviews-v1.default`, `service:reviews.default.mesh` -> `reviews.default.mesh`. */
function nodeLabel(id: string): string {
  const [kind, rest = ''] = id.split(/:(.*)/s);
  if (kind === 'workload') {
    const [ns, name] = rest.split('/');
    return `${name}.${ns}`;
  }
  return rest || id;
}

/** The mesh UI's traffic graph for a terminal: one row per edge. */
export const graphCommand: CommandModule<object, Argv> = {
  command: 'graph',
  describe: 'the traffic graph the agents report: per edge req/s, error rate, p99 and whether it is mutual TLS',
  builder: (y) => apiFlags(y).option('output', outputOption) as never,
  handler: async (argv) => {
    const g = await apiClient(argv).call(meshGraph, 'GET', '/v1/graph');
    emit(argv.output, g, () =>
      table(
        ['source', 'target', 'protocol', 'rate', 'errors', 'p99', 'mtls', 'total'],
        g.edges.map((e) => [
          nodeLabel(e.source),
          nodeLabel(e.target),
          e.protocol,
          `${e.rps.toFixed(1)}/s`,
          `${(e.errorRate * 100).toFixed(1)}%`,
          e.p99Ms === null ? '-' : `${e.p99Ms.toFixed(1)} ms`,
          e.mtls ? 'yes' : 'no',
          String(e.requests),
        ]),
      ),
    );
  },
};
