import assert from 'node:assert/strict';
import { test } from 'node:test';
import { controllerTarget, type Lookup } from '../../../src/agent/controller-target.js';
import { createLogger } from '../../../src/lib/logger.js';

const logger = createLogger({ level: 'silent' });
const names: Record<string, Array<{ address: string; family: number }>> = {
  'ctl1.example': [{ address: '198.18.0.1', family: 4 }],
  'ctl2.example': [
    { address: '198.18.0.2', family: 4 },
    { address: '2001:db8::2', family: 6 },
  ],
  'v6.example': [{ address: '2001:db8::9', family: 6 }],
};
const lookup: Lookup = async (host) => {
  const found = names[host];
  if (!found) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  return found;
};

test('one controller is used as given; several become an address list grpc-js fails over along', async () => {
  assert.equal(await controllerTarget(['ctl1.example:15012'], logger, lookup), 'ctl1.example:15012');
  assert.equal(await controllerTarget(['198.18.0.1:15012', '198.18.0.2:15012'], logger, lookup), 'ipv4:198.18.0.1:15012,198.18.0.2:15012');
  assert.equal(
    await controllerTarget(['[2001:db8::1]:15012', '[2001:db8::2]:15013'], logger, lookup),
    'ipv6:[2001:db8::1]:15012,[2001:db8::2]:15013',
  );
});

test('names are resolved (once) into the list; the family most addresses have is kept; unresolvable names are left out', async () => {
  assert.equal(
    await controllerTarget(['ctl1.example:15012', 'ctl2.example:15012'], logger, lookup),
    'ipv4:198.18.0.1:15012,198.18.0.2:15012',
  );
  assert.equal(
    await controllerTarget(['v6.example:15012', '[2001:db8::3]:15012'], logger, lookup),
    'ipv6:[2001:db8::9]:15012,[2001:db8::3]:15012',
  );
  assert.equal(await controllerTarget(['nowhere.example:15012', '198.18.0.2:15012'], logger, lookup), 'ipv4:198.18.0.2:15012');
  assert.equal(await controllerTarget(['nowhere.example:15012', 'gone.example:15012'], logger, lookup), 'nowhere.example:15012');
  assert.equal(await controllerTarget(['198.18.0.1:15012', '198.18.0.1:15012'], logger, lookup), 'ipv4:198.18.0.1:15012');
});
