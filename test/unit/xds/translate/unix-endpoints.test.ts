import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Resource } from '../../../../src/api/resource.js';
import { parseResources } from '../../../../src/api/resource-parse.js';
import { CDS, decodeAny, EDS, encodeAny } from '../../../../src/xds/index.js';
import { translateNode } from '../../../../src/xds/translate/index.js';
import type { TranslateInput } from '../../../../src/xds/translate/input.js';
import { assertGolden } from '../../../support/golden.js';
import { bookinfoInput, bookinfoResources } from './fixture.js';

// Istio's own example (a service on a unix socket of the client's host), an abstract socket, and a
// WorkloadEntry on h1 whose workload listens on a socket: no inbound port, no mesh mTLS to it.
const UNIX = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: unix-domain-socket-example, namespace: default}
spec:
  hosts: [example.unix.local]
  location: MESH_EXTERNAL
  ports: [{number: 8001, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: unix:///var/run/example/socket
  - address: unix://@example-abstract
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local-agent, namespace: default}
spec:
  hosts: [local-agent.default.mesh]
  location: MESH_INTERNAL
  ports: [{number: 9100, name: tcp, protocol: TCP}]
  resolution: STATIC
  workloadSelector: {labels: {app: local-agent}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: local-agent-h1
  namespace: default
  labels: {app: local-agent}
  annotations: {vmesh.io/host: h1, vmesh.io/uid: "1001"}
spec:
  address: unix:///run/local-agent.sock
  serviceAccount: local-agent
`;

function input(node: 'h1' | 'grpc'): TranslateInput {
  const parsed = parseResources(UNIX, { source: 'unix.yaml' });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.error));
  return bookinfoInput(node, { resources: [...bookinfoResources(), ...(parsed.value as Resource[])] });
}

const UNIX_CLUSTERS = /example\.unix\.local|local-agent/;

describe('unix domain socket endpoints', () => {
  test('golden: the clusters and assignments of the unix services on h1', () => {
    const out = translateNode(input('h1'));
    const pick = (type: string) => (out[type] ?? []).filter((r) => UNIX_CLUSTERS.test(r.name));
    const text = JSON.stringify({ clusters: pick(CDS), endpoints: pick(EDS) }, null, 2);
    assertGolden(join(import.meta.dirname, 'golden', 'unix-endpoints-h1.json'), `${text}\n`);
  });

  test('a unix endpoint is an Envoy Pipe with the path as Istio wrote it (@ for abstract), and encodes', () => {
    const out = translateNode(input('h1'));
    const cla = (out[EDS] ?? []).find((r) => r.name === 'outbound|8001||example.unix.local');
    assert.ok(cla);
    const decoded = decodeAny<{ endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: Record<string, unknown> } }> }> }>(
      encodeAny(EDS, cla.message),
    );
    const addrs = decoded.endpoints.flatMap((g) => g.lb_endpoints.map((e) => e.endpoint.address));
    assert.deepEqual(
      addrs.map((a) => [a.address, (a.pipe as { path: string }).path]),
      [
        ['pipe', '/var/run/example/socket'],
        ['pipe', '@example-abstract'],
      ],
    );
  });

  test('a workload on a socket gets no inbound listener port and no mesh mTLS, though its host is meshed', () => {
    const inp = input('h1');
    const out = translateNode(inp);
    const cluster = (out[CDS] ?? []).find((r) => r.name === 'outbound|9100||local-agent.default.mesh');
    assert.ok(cluster);
    const message = cluster.message as Record<string, unknown>;
    assert.equal(message.transport_socket_matches, undefined);
    assert.equal(message.transport_socket, undefined);
    assert.ok(!(out[CDS] ?? []).some((r) => r.name === 'inbound|9100||'), 'no inbound cluster for the socket workload');
    const without = translateNode(bookinfoInput('h1'));
    const names = (o: typeof out, t: string) => (o[t] ?? []).map((r) => r.name).filter((n) => n.startsWith('inbound'));
    assert.deepEqual(names(out, CDS), names(without, CDS));
    for (const c of out[CDS] ?? []) decodeAny(encodeAny(CDS, c.message));
  });

  test('proxyless gRPC gets the unix services without their socket endpoints (its xDS client takes IPs only)', () => {
    const out = translateNode(input('grpc'));
    const cla = (out[EDS] ?? []).find((r) => r.name === 'outbound|8001||example.unix.local');
    assert.ok(cla);
    assert.deepEqual((cla.message as { endpoints: unknown[] }).endpoints, []);
  });
});
