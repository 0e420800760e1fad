import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

type EchoClient = grpc.Client & {
  Say(req: { text: string }, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { text: string; server: string }) => void): void;
};

export function echoClientConstructor(): new (target: string, creds: grpc.ChannelCredentials) => EchoClient {
  const def = protoLoader.loadSync(join(import.meta.dirname, 'echo.proto'), { keepCase: false });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    vmesh: { test: { Echo: new (t: string, c: grpc.ChannelCredentials) => EchoClient } };
  };
  return pkg.vmesh.test.Echo;
}

/** A gRPC echo server on 127.0.0.1 (port 0): answers with the text and its own name. */
export async function startEchoServer(name: string): Promise<{ port: number; stop(): void }> {
  const Echo = echoClientConstructor() as unknown as { service: grpc.ServiceDefinition };
  const server = new grpc.Server();
  server.addService(Echo.service, {
    Say: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { text: call.request.text, server: name }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { port, stop: () => server.forceShutdown() };
}

export function say(client: EchoClient, text: string, deadlineMs = 10_000): Promise<{ text: string; server: string }> {
  return new Promise((resolve, reject) =>
    client.Say({ text }, { deadline: Date.now() + deadlineMs }, (e, r) => (e || !r ? reject(e ?? new Error('no reply')) : resolve(r))),
  );
}
