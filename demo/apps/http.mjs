// What the sample apps share: a JSON HTTP server, the caller's identity as the mesh reports it, and a JSON GET to
// another service by name. The apps know nothing about the mesh: they call `http://reviews:9082/` in plaintext and
// the agent's DNS proxy, capture and proxy do the rest; mTLS is visible only through the header the inbound proxy adds.
import { Agent, createServer, get } from 'node:http';

const keepAlive = new Agent({ keepAlive: true, maxSockets: 32 });

/** The SPIFFE ids of an x-forwarded-client-cert header: URI = the verified caller, By = the identity the server side presented. */
export function peerOf(req) {
  const xfcc = req.headers['x-forwarded-client-cert'];
  if (typeof xfcc !== 'string') return { uri: null, by: null };
  const part = (key) =>
    xfcc
      .split(';')
      .find((p) => p.startsWith(`${key}=`))
      ?.slice(key.length + 1) ?? null;
  return { uri: part('URI'), by: part('By') };
}

/** GET url and parse its JSON: { status, body } or { error }, never throws. */
export function getJson(url, timeoutMs = 10_000) {
  return new Promise((resolve) => {
    const req = get(url, { agent: keepAlive, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
      });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, body: JSON.parse(text) });
        } catch {
          resolve({ status: res.statusCode, error: `not JSON: ${text.slice(0, 80)}` });
        }
      });
      res.on('error', (e) => resolve({ error: e.code ?? e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.code ?? e.message }));
  });
}

/** Serves `handler(req)`'s result as JSON on 0.0.0.0:port and prints `ready` once listening. */
export function serve(port, handler) {
  createServer((req, res) => {
    Promise.resolve()
      .then(() => handler(req))
      .then(
        (body) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        },
        (e) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: String(e?.message ?? e) }));
        },
      );
  }).listen(port, '0.0.0.0', () => console.log('ready'));
}

/** A required environment variable, or exit with a message naming it. */
export function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return v;
}
