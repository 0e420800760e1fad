/**
 * A test OpenTelemetry collector: OTLP/gRPC (TraceService/Export) and OTLP/HTTP protobuf (POST /v1/traces) on one
 * address, collecting every span it is sent as plain objects.
 */
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 2 server, 3 client. */
  readonly kind: number;
  readonly serviceName: string;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly statusCode: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly via: 'grpc' | 'http';
}

const PROTO = join(import.meta.dirname, 'otlp-trace.proto');

type Kv = { key: string; value?: { stringValue?: string; boolValue?: boolean; intValue?: string; doubleValue?: number } };
type Req = {
  resourceSpans?: Array<{
    resource?: { attributes?: Kv[] };
    scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }>;
  }>;
};

function attrs(list: Kv[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key] = v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ?? '';
  }
  return out;
}

function spansOf(req: Req, via: ReceivedSpan['via']): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const hex = (b: unknown) => Buffer.from((b as Uint8Array | undefined) ?? []).toString('hex');
  for (const rs of req.resourceSpans ?? []) {
    const serviceName = String(attrs(rs.resource?.attributes)['service.name'] ?? '');
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          name: String(s.name ?? ''),
          kind: Number(s.kind ?? 0),
          serviceName,
          attributes: attrs(s.attributes as Kv[] | undefined),
          statusCode: Number((s.status as { code?: number } | undefined)?.code ?? 0),
          startNs: BigInt(String(s.startTimeUnixNano ?? '0')),
          endNs: BigInt(String(s.endTimeUnixNano ?? '0')),
          via,
        });
      }
    }
  }
  return out;
}

export interface OtlpReceiver {
  readonly spans: ReceivedSpan[];
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Resolves once `pred` holds for the spans received, or rejects after `timeoutMs`. */
  waitFor(pred: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs: number, what: string): Promise<void>;
  close(): Promise<void>;
}

/** Listens on `host` (gRPC on grpcPort, HTTP on httpPort; 0 picks free ports). */
export async function startOtlpReceiver(host = '127.0.0.1', grpcPort = 0, httpPort = 0): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const root = await protobuf.load(PROTO);
  const Request = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
  const Response = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
  const decode = (buf: Uint8Array) => Request.toObject(Request.decode(buf), { longs: String, bytes: Buffer }) as Req;

  const def = protoLoader.loadSync(PROTO, { keepCase: false, longs: String, bytes: Buffer, defaults: false, oneofs: false });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    opentelemetry: { proto: { collector: { trace: { v1: { TraceService: grpc.ServiceClientConstructor } } } } };
  };
  const server = new grpc.Server();
  server.addService(pkg.opentelemetry.proto.collector.trace.v1.TraceService.service, {
    Export: (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      spans.push(...spansOf(call.request, 'grpc'));
      cb(null, {});
    },
  });
  const gPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${grpcPort}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );

  const http: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      try {
        spans.push(...spansOf(decode(Buffer.concat(chunks)), 'http'));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from(Response.encode({}).finish()));
      } catch (e) {
        res.writeHead(400).end(String(e));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(httpPort, host, () => resolve());
  });
  const addr = http.address();
  return {
    spans,
    grpcPort: gPort,
    httpPort: typeof addr === 'object' && addr ? addr.port : httpPort,
    async waitFor(pred, timeoutMs, what) {
      const end = Date.now() + timeoutMs;
      while (!pred(spans)) {
        if (Date.now() > end) throw new Error(`OTLP receiver: ${what} not seen in ${timeoutMs} ms (${spans.length} spans received)`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async close() {
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}
