/**
 * The controller side of `npm run bench:ca`'s end-to-end part, in its own process (forked by run.ts, so its CPU
 * is its own and `--cpu-prof` can profile it alone): a real controller with `--hosts` join tokens and 10
 * workloads registered on each host. Speaks to run.ts over IPC:
 *   -> { ready, grpcAddress, hosts: [{ name, token }] }
 *   <- { cpu } -> { cpu: process.cpuUsage() }      <- { stop } -> exits after stopping the controller
 */
import { parseArgs } from 'node:util';
import { startTestController } from '../../support/controller-harness.js';

const { values: opt } = parseArgs({
  options: {
    hosts: { type: 'string', default: '4' },
    'sign-rate': { type: 'string' },
    'sign-burst': { type: 'string' },
  },
});
export const WORKLOADS_PER_HOST = 10;

const flags: Record<string, string> = {};
if (opt['sign-rate']) flags.signRate = opt['sign-rate'];
if (opt['sign-burst']) flags.signBurst = opt['sign-burst'];
const ctl = await startTestController({ flags });
const hosts: Array<{ name: string; token: string }> = [];
for (let h = 0; h < Number(opt.hosts); h++) {
  const name = `bench-host-${h}`;
  const t = await ctl.api('POST', '/v1/tokens', { host: name });
  if (t.status !== 201) throw new Error(`token for ${name}: ${t.status} ${JSON.stringify(t.body)}`);
  hosts.push({ name, token: t.body.token });
  for (let i = 0; i < WORKLOADS_PER_HOST; i++) {
    const r = await ctl.api('POST', '/v1/workloads', {
      name: `w${h}-${i}`,
      service: `svc${h}-${i}`,
      serviceAccount: `sa${i}`,
      address: `198.18.${h >> 8}.${(h & 255) + 1}`,
      ports: ['http:80'],
      host: name,
    });
    if (r.status !== 201) throw new Error(`workload w${h}-${i}: ${r.status} ${JSON.stringify(r.body)}`);
  }
}
process.on('message', (m: { cpu?: true; stop?: true }) => {
  if (m.cpu) process.send?.({ cpu: process.cpuUsage() });
  if (m.stop) {
    // process.exit runs the exit hooks --cpu-prof needs to write its profile.
    void ctl.stop().finally(() => process.exit(0));
  }
});
process.send?.({ ready: true, grpcAddress: ctl.grpcAddress, hosts });
