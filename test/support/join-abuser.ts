/**
 * Hostile Join requests from a process of their own, so that encoding megabytes of them does not count against
 * the event loop of the controller under test. Usage: join-abuser.ts JSON, with address, caPem, victimToken,
 * goodCsr, cases, seed. Prints one JSON line: the cases answered against the rules, and the slowest answer.
 */
import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient } from '../../src/api/controller-proto.js';
import { Limits } from '../../src/lib/limits.js';
import { FACTS } from '../unit/ca/controller-fixture.js';
import { pool, type Rng, rng } from './abuse.js';

const BEGIN = '-----BEGIN CERTIFICATE REQUEST-----';
type Outcome = { ok: true } | { ok: false; code: grpc.status; details: string };
const args = JSON.parse(process.argv[2] ?? '{}') as {
  address: string;
  caPem: string;
  victimToken: string;
  goodCsr: string;
  cases: number;
  seed: number;
};
const { victimToken, goodCsr } = args;
const creds = grpc.credentials.createSsl(Buffer.from(args.caPem));
const Client = controllerServiceClient();
const typed = new Client(args.address, creds) as unknown as Record<
  string,
  (req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void
>;
const client = new grpc.Client(args.address, creds);

const joinRaw = (bytes: Buffer): Promise<Outcome> =>
  new Promise((resolve) =>
    client.makeUnaryRequest(
      '/vmesh.v1.Controller/Join',
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      { deadline: Date.now() + 20_000 },
      (e) => resolve(e ? { ok: false, code: e.code, details: e.details } : { ok: true }),
    ),
  );
const joinObj = (req: object): Promise<Outcome> =>
  new Promise((resolve) =>
    typed.Join?.call(typed, req, { deadline: Date.now() + 20_000 }, (e) =>
      resolve(e ? { ok: false, code: e.code, details: e.details } : { ok: true }),
    ),
  );

/** One generated hostile request, and what it is allowed to be answered with. */
function hostile(r: Rng, i: number): { what: string; send: () => Promise<Outcome>; codes: RegExp } {
  const token = r.pick([
    '',
    victimToken,
    victimToken.replace(/\.([a-z0-9]{6})\./, '.zzzzzz.'),
    victimToken.slice(0, r.int(0, victimToken.length)),
    `${victimToken}${r.text(r.size(70_000))}`,
    r.text(r.int(0, 300)),
  ]);
  const hostName = r.pick(['victim', 'victim', '', 'a'.repeat(r.int(250, 100_000)), r.text(r.int(0, 80)), 'VICTIM', 'v..x', '\u0000']);
  const csrPem = r.pick([
    () => BEGIN.repeat(Math.ceil(r.size(1 << 20) / BEGIN.length)),
    // Cut inside the END line at the latest: a whole CSR with the victim token would be a real Join.
    () => goodCsr.slice(0, r.int(0, goodCsr.length - 2)),
    () => `${goodCsr}${goodCsr}`,
    () => goodCsr.replace(/[A-Za-z]/, '!'),
    () => r.text(r.size(1 << 20)),
    () => `${BEGIN}\n${r.bytes(r.size(Limits.csrPemBytes)).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`,
    () => '',
  ])();
  const kind = i % 10;
  if (kind === 9) {
    // Wrong wire types and truncated messages: bytes that are not a JoinRequest, or a real one cut short.
    return { what: 'raw bytes', send: () => joinRaw(r.bytes(r.size(64 * 1024))), codes: /^VMESH_ERR_(?!INTERNAL)[A-Z_]+: |deserializ/i };
  }
  const facts =
    kind === 8
      ? { ...FACTS, hostname: r.text(r.size(100_000)), ipv4: Array.from({ length: r.int(0, 20_000) }, () => '198.18.0.1'), cpuCores: -1 }
      : FACTS;
  return {
    what: `token ${token.length} chars, host ${hostName.length}, csr ${csrPem.length}`,
    send: () => joinObj({ token, hostName, csrPem, facts }),
    codes: /^VMESH_ERR_(TOKEN_INVALID|CSR_INVALID|INVALID_RESOURCE|INVALID_ADDRESS): /,
  };
}

const r = rng(args.seed);
const failures: string[] = [];
const slowest = { ms: 0, what: '' };
let exhausted = 0;
await pool(args.cases, 16, async (i) => {
  const c = hostile(r, i);
  const t0 = Date.now();
  const out = await c.send();
  const ms = Date.now() - t0;
  if (ms > slowest.ms) Object.assign(slowest, { ms, what: c.what });
  if (out.ok) failures.push(`case ${i} (${c.what}) was accepted`);
  else if (out.code === grpc.status.RESOURCE_EXHAUSTED)
    exhausted++; // over the message cap: grpc refuses it unread
  else if (!c.codes.test(out.details) || out.details.includes('\n'))
    failures.push(`case ${i} (${c.what}): ${grpc.status[out.code]} ${out.details.slice(0, 300)}`);
});
client.close();
(typed as unknown as grpc.Client).close();
console.log(JSON.stringify({ failures: failures.slice(0, 20), failed: failures.length, exhausted, slowest }));
