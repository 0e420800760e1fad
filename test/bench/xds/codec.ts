// The xDS codec on one host's full resource set of a 1000-service / 2000-host mesh: encode and decode time and the
// heap the decoded set holds, for protobufjs as vmesh uses it and, given `--es <dir>` (protoc-gen-es output
// generated against @bufbuild/protobuf v2; see the commit that added this file), for @bufbuild/protobuf.
// Run: node --expose-gc --import tsx test/bench/xds/codec.ts [--rounds 5] [--es /path/to/gen]
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { expandAnys } from '../../../src/xds/decode-deep.js';
import { type AnyMessage, protos } from '../../../src/xds/protos.js';
import { makeResource, wireResource } from '../../../src/xds/snapshot.js';
import { CDS, EDS, LDS, RDS, typeLabel, typeNameOf } from '../../../src/xds/type-urls.js';
import { bigSnapshot } from './big-snapshot.js';
import { REPO_ROOT } from './controller-process.js';

interface Row {
  codec: string;
  step: string;
  ms: number;
  heapBytes?: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (heap figures need it)');

function best(rounds: number, f: () => void): number {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    f();
    min = Math.min(min, performance.now() - t);
  }
  return Math.round(min * 10) / 10;
}

/** Heap held by what `make` returns, after a full collection. */
function retained(make: () => unknown): number {
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const kept = make();
  gc?.();
  const after = process.memoryUsage().heapUsed;
  if (!kept) throw new Error('nothing kept');
  return after - before;
}

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, es: { type: 'string' } } });
const rounds = Number(values.rounds);
const snapshot = bigSnapshot();
const types = [CDS, EDS, LDS, RDS];
const objects = types.flatMap((t) => (snapshot[t] ?? []).map((r) => ({ typeUrl: t, message: r.message as object })));
const reg = protos();
const anys: AnyMessage[] = objects.map((o) => reg.encodeAny(o.typeUrl, o.message));
const bytes = anys.reduce((n, a) => n + a.value.length, 0);
const rows: Row[] = [];

// protobufjs as vmesh uses it: plain objects with proto names in, checked, encoded; decoded to plain objects.
rows.push({
  codec: 'protobufjs',
  step: 'encode (checkShape+fromObject+encode)',
  ms: best(rounds, () => objects.map((o) => reg.encodeAny(o.typeUrl, o.message))),
});
const pjTypes = anys.map((a) => reg.type(typeNameOf(a.type_url)));
const pjMessages = anys.map((a, i) => pjTypes[i]?.decode(a.value));
rows.push({
  codec: 'protobufjs',
  step: 'encode (message instance)',
  ms: best(rounds, () => pjMessages.map((m, i) => pjTypes[i]?.encode(m as never).finish())),
});
rows.push({
  codec: 'protobufjs',
  step: 'decode (to message instance)',
  ms: best(rounds, () => anys.map((a, i) => pjTypes[i]?.decode(a.value))),
  heapBytes: retained(() => anys.map((a, i) => pjTypes[i]?.decode(a.value))),
});
rows.push({
  codec: 'protobufjs',
  step: 'decode (to plain object, as vmesh)',
  ms: best(rounds, () => anys.map((a) => reg.decodeAny(a))),
  heapBytes: retained(() => anys.map((a) => reg.decodeAny(a))),
});
rows.push({
  codec: 'protobufjs',
  step: 'decode + nested Anys (agent today)',
  ms: best(rounds, () => anys.map((a) => expandAnys(reg.decodeAny(a)))),
  heapBytes: retained(() => anys.map((a) => expandAnys(reg.decodeAny(a)))),
});

// The agent handing an update to its proxy workers: before, each decoded resource was encoded again; now the
// controller's bytes pass through (src/xds/local-server.ts), only hashed for the local snapshot's versions.
const names = objects.map((o) =>
  String((o.message as { name?: unknown; cluster_name?: unknown }).name ?? (o.message as { cluster_name?: unknown }).cluster_name),
);
const expanded = anys.map((a) => expandAnys(reg.decodeAny(a)) as object);
rows.push({
  codec: 'protobufjs',
  step: 'agent -> workers: re-encode (before)',
  ms: best(rounds, () => expanded.map((m, i) => makeResource(anys[i]?.type_url ?? '', names[i] ?? '', m))),
});
rows.push({
  codec: 'protobufjs',
  step: 'agent -> workers: pass bytes (after)',
  ms: best(rounds, () => anys.map((a, i) => wireResource(a.type_url, names[i] ?? '', a))),
});

if (values.es) {
  // Loaded at run time: the generated code is not part of the repository.
  const pb = (await import(pathToFileURL(createRequire(join(values.es, 'x.js')).resolve('@bufbuild/protobuf')).href)) as {
    fromBinary: (s: unknown, b: Uint8Array) => unknown;
    toBinary: (s: unknown, m: unknown) => Uint8Array;
  };
  const schemaOf: Record<string, unknown> = {
    [CDS]: ((await import(pathToFileURL(join(values.es, 'envoy/config/cluster/v3/cluster_pb.ts')).href)) as Record<string, unknown>)
      .ClusterSchema,
    [EDS]: ((await import(pathToFileURL(join(values.es, 'envoy/config/endpoint/v3/endpoint_pb.ts')).href)) as Record<string, unknown>)
      .ClusterLoadAssignmentSchema,
    [LDS]: ((await import(pathToFileURL(join(values.es, 'envoy/config/listener/v3/listener_pb.ts')).href)) as Record<string, unknown>)
      .ListenerSchema,
    [RDS]: ((await import(pathToFileURL(join(values.es, 'envoy/config/route/v3/route_pb.ts')).href)) as Record<string, unknown>)
      .RouteConfigurationSchema,
  };
  const schemas = anys.map((a) => schemaOf[a.type_url]);
  const esMessages = anys.map((a, i) => pb.fromBinary(schemas[i], a.value));
  rows.push({
    codec: '@bufbuild/protobuf',
    step: 'encode (message instance)',
    ms: best(rounds, () => esMessages.map((m, i) => pb.toBinary(schemas[i], m))),
  });
  rows.push({
    codec: '@bufbuild/protobuf',
    step: 'decode (to message instance)',
    ms: best(rounds, () => anys.map((a, i) => pb.fromBinary(schemas[i], a.value))),
    heapBytes: retained(() => anys.map((a, i) => pb.fromBinary(schemas[i], a.value))),
  });
}

const counts = types.map((t) => `${typeLabel(t)} ${snapshot[t]?.length ?? 0}`).join(', ');
console.log(
  `one host of 1000 services / 2000 hosts: ${counts}; ${anys.length} resources, ${(bytes / 1e6).toFixed(2)} MB encoded; best of ${rounds}`,
);
console.log(`${'codec'.padEnd(20)} ${'step'.padEnd(40)} ${'ms'.padStart(8)} ${'heap MB'.padStart(8)}`);
for (const r of rows) {
  const heap = r.heapBytes === undefined ? '' : (r.heapBytes / 1e6).toFixed(1);
  console.log(`${r.codec.padEnd(20)} ${r.step.padEnd(40)} ${String(r.ms).padStart(8)} ${heap.padStart(8)}`);
}
const dir = join(REPO_ROOT, 'test', 'bench', 'results');
await mkdir(dir, { recursive: true });
const file = join(dir, `codec-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
await writeFile(file, JSON.stringify({ resources: anys.length, bytes, rounds, rows }, null, 2));
console.log(`wrote ${file}`);
