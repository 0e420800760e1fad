import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { APP, type FeatureLab, startFeatureLab } from './features-lab.js';

// Istio regexes are RE2 and match in linear time. A VirtualService with the valid regex /(a+)+b, which a
// backtracking engine takes 2^n steps to refuse on "/" + n a's, must not let one client stall the proxy: while
// curl sends such paths twice a second (each on its own connection, so over every proxy worker), another client
// keeps being served, and the attacker's own requests are answered by the fall-through route.
const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - name: regex-route
    match: [{uri: {regex: "/(a+)+b"}}]
    headers: {response: {set: {x-route: regex}}}
    route: [{destination: {host: web}}]
  - name: default-route
    route: [{destination: {host: web}}]
`;

describe('catastrophic regular expressions in config do not stall the proxy', () => {
  let f: FeatureLab;

  before(async () => {
    f = await startFeatureLab({
      servers: ['http:web:8080'],
      services: [{ name: 'web', port: 8080, portName: 'http', endpoints: [{ name: 'web-1', port: 8080 }] }],
      config: VS,
    });
    await f.waitForConfig('h2', ['default-route']);
  });
  after(async () => {
    await f?.teardown();
  });

  test('the regex route still matches what it should (full match)', async () => {
    const head = (path: string) =>
      f.h2.execOk('curl', ['-sS', '-o', '/dev/null', '-D', '-', '--max-time', '10', `http://web:8080${path}`], {
        ...APP,
        timeoutMs: 20_000,
      });
    assert.match(await head('/aaab'), /x-route: regex/i);
    assert.doesNotMatch(await head('/aaabc'), /x-route/i);
  });

  test("a client sending 45 a's twice a second leaves every other request served", async () => {
    const stopFile = join(tmpdir(), `vmesh-feat-regex-stop-${process.pid}-${Date.now()}`);
    const loop = f.spawnClient('loop', { url: 'http://web:8080/other', concurrency: 2, stopFile, maxMs: 60_000 });
    let attack = '';
    try {
      await loop.waitForLine(/^started$/, 20_000);
      // 12 requests at 2/s, each its own curl (a new connection, so the workers take turns), each bounded by 8 s.
      const url = `http://web:8080/${'a'.repeat(45)}`;
      const script =
        'i=0; while [ $i -lt 12 ]; do curl -sS -o /dev/null -w "%{http_code}\\n" --max-time 8 "$1" & sleep 0.5; i=$((i+1)); done; wait';
      attack = (await f.h2.exec('sh', ['-c', script, 'attack', url], { ...APP, timeoutMs: 40_000 })).stdout;
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      writeFileSync(stopFile, '');
    }
    const line = await loop.waitForLine(/^\{/, 30_000);
    rmSync(stopFile, { force: true });
    const out = JSON.parse(line) as {
      n: number;
      statuses: Record<string, number>;
      errorCount: number;
      errors: string[];
      stoppedByFile: boolean;
    };
    const show = JSON.stringify({ attack: attack.trim().split('\n'), other: out });
    // The long paths fall through to the default route: answered, not hung.
    assert.deepEqual(attack.trim().split('\n'), Array(12).fill('200'), show);
    assert.equal(out.stoppedByFile, true, show);
    assert.equal(out.errorCount, 0, show);
    assert.deepEqual(Object.keys(out.statuses), ['200'], show);
    assert.ok(out.n >= 50, show);
  });
});
