// Bulk TCP sender: `bulk-send.mjs HOST PORT MEGABYTES TIMEOUT_MS` writes that many MiB, half-closes and waits for the
// sink's `done <bytes>`; prints {"bytes","seconds","mbps"} (MB/s, 10^6) or {"error"}.
import { connect } from 'node:net';

const [host, port, mib, timeoutMs] = process.argv.slice(2);
const total = Number(mib) * 1024 * 1024;
const chunk = Buffer.alloc(256 * 1024, 'b');
const t0 = process.hrtime.bigint();
const sock = connect({ host, port: Number(port), allowHalfOpen: true });
const fail = (e) => {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(0);
};
const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), Number(timeoutMs));
let sent = 0;
const pump = () => {
  while (sent < total) {
    const n = Math.min(chunk.length, total - sent);
    sent += n;
    if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void sock.once('drain', pump);
  }
  sock.end();
};
sock.on('connect', pump);
let reply = '';
sock.setEncoding('utf8').on('data', (d) => {
  reply += d;
});
sock.on('end', () => {
  clearTimeout(timer);
  const m = /^done (\d+)/.exec(reply);
  if (!m) return fail(`unexpected reply ${JSON.stringify(reply.slice(0, 100))}`);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = Number(m[1]);
  console.log(JSON.stringify({ bytes, seconds, mbps: bytes / 1e6 / seconds }));
  process.exit(0);
});
sock.on('error', fail);
