// The bench upstream: `upstream.mjs HTTP_PORTS TCP_PORTS` (comma-separated). HTTP answers every request with the same
// 1 KiB body and names the peer it saw (x-peer), so the bench can prove which path a request took. TCP ports are
// bulk sinks: they count bytes and, when the sender half-closes, answer `done <bytes>`.
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';

const [httpPorts = '', tcpPorts = ''] = process.argv.slice(2);
const body = Buffer.alloc(1024, 'x');
for (const port of httpPorts.split(',').filter(Boolean)) {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'x-peer': req.socket.remoteAddress ?? '' });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(port), '0.0.0.0');
}
for (const port of tcpPorts.split(',').filter(Boolean)) {
  createTcpServer({ allowHalfOpen: true }, (c) => {
    let n = 0;
    c.on('data', (d) => {
      n += d.length;
    });
    c.on('end', () => c.end(`done ${n}\n`));
    c.on('error', () => {});
  }).listen(Number(port), '0.0.0.0');
}
setTimeout(() => console.log('ready'), 100);
