// The bench upstream: `upstream.mjs HTTP_PORTS TCP_PORTS [H2C_PORTS [GRPC_PORTS]]` (comma-separated). HTTP answers every request
// with the same 1 KiB body and names the peer it saw (x-peer), so the bench can prove which path a request took; the
// H2C ports answer the same over cleartext HTTP/2 (prior knowledge); GRPC ports serve the unary bench.Echo/Get
// with the same 1 KiB as raw bytes (grpc-js, plaintext). TCP ports are bulk sinks: they count bytes and,
// when the sender half-closes, answer `done <bytes>`.

import { createServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import { createServer as createTcpServer } from 'node:net';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { echoService } from './echo-method.mjs';

const [httpPorts = '', tcpPorts = '', h2cPorts = '', grpcPorts = ''] = process.argv.slice(2);
const body = Buffer.alloc(1024, 'x');
const ports = (s) => s.split(',').filter(Boolean).map(Number);
for (const port of ports(httpPorts)) {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'x-peer': req.socket.remoteAddress ?? '' });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '0.0.0.0');
}
for (const port of ports(h2cPorts)) {
  const server = createH2Server({ settings: { maxConcurrentStreams: 1000 } });
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({
      ':status': 200,
      'content-type': 'text/plain',
      'content-length': body.length,
      'x-peer': stream.session?.socket?.remoteAddress ?? '',
    });
    stream.end(body);
  });
  server.on('session', (s) => s.on('error', () => {}));
  server.listen(port, '0.0.0.0');
}
for (const port of ports(grpcPorts)) {
  const server = new Server();
  server.addService(echoService, { Get: (_call, cb) => cb(null, body) });
  server.bindAsync(`0.0.0.0:${port}`, ServerCredentials.createInsecure(), (e) => {
    if (e) console.error(`grpc ${port}: ${e.message}`);
  });
}
for (const port of ports(tcpPorts)) {
  createTcpServer({ allowHalfOpen: true }, (c) => {
    let n = 0;
    c.on('data', (d) => {
      n += d.length;
    });
    c.on('end', () => c.end(`done ${n}\n`));
    c.on('error', () => {});
  }).listen(port, '0.0.0.0');
}
setTimeout(() => console.log('ready'), 100);
