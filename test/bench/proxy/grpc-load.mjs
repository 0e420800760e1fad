// gRPC unary load: `grpc-load.mjs TARGET SECONDS CHANNELS IN_FLIGHT` keeps IN_FLIGHT calls outstanding on each of
// CHANNELS channels (one HTTP/2 connection each) for SECONDS, then prints {rps, requests, errors} as JSON. The
// method is bench.Echo/Get with raw bytes (no protobuf codec): the answer is the upstream's 1 KiB.
import { credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import { echoService } from './echo-method.mjs';

const [target = '', seconds = '10', channels = '10', inFlight = '10'] = process.argv.slice(2);
const Client = makeGenericClientConstructor(echoService, 'Echo');
const request = Buffer.alloc(16, 'q');
let ok = 0;
let errors = 0;
let firstError = '';
let stop = false;
const clients = Array.from(
  { length: Number(channels) },
  () => new Client(target, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
);
// Connected first: connection set-up is not part of the measured time.
await Promise.all(clients.map((c) => new Promise((res, rej) => c.waitForReady(Date.now() + 10_000, (e) => (e ? rej(e) : res())))));
const started = process.hrtime.bigint();
await new Promise((done) => {
  let live = 0;
  const call = (c) => {
    live++;
    c.Get(request, (e, v) => {
      live--;
      if (e || v?.length !== 1024) {
        errors++;
        firstError ||= e ? e.message : `answer of ${v?.length} bytes`;
      } else ok++;
      if (!stop) call(c);
      else if (live === 0) done();
    });
  };
  for (const c of clients) for (let i = 0; i < Number(inFlight); i++) call(c);
  setTimeout(() => {
    stop = true;
  }, Number(seconds) * 1000);
});
const secs = Number(process.hrtime.bigint() - started) / 1e9;
for (const c of clients) c.close();
console.log(JSON.stringify({ rps: ok / secs, requests: ok, errors, seconds: secs, ...(firstError ? { firstError } : {}) }));
