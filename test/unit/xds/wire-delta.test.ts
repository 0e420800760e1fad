import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { adsServiceDefinition, decodeMessage, encodeAny, encodeMessage } from '../../../src/xds/protos.js';
import { CDS, NDS } from '../../../src/xds/type-urls.js';
import { encodeDeltaResponse } from '../../../src/xds/wire-delta.js';

const RESPONSE = 'envoy.service.discovery.v3.DeltaDiscoveryResponse';

function resource(name: string, version: string) {
  const any = encodeAny(CDS, { name, type: 'EDS', connect_timeout: { seconds: 10 } });
  return { name, version, resource: any };
}

describe('DeltaDiscoveryResponse written to the wire directly', () => {
  test('decodes as protobufjs encodes it: names, versions, Any bytes, removals, unicode and long fields', () => {
    const long = 'x'.repeat(70_000);
    const res = {
      system_version_info: 'v1-é',
      type_url: CDS,
      resources: [resource('outbound|80||a.default.mesh', 'abc'), resource(long, ''), resource('ü', 'v')],
      removed_resources: ['gone', '', 'ñ'],
      nonce: '17',
    };
    const direct = encodeDeltaResponse(res);
    assert.ok(direct);
    assert.deepEqual(decodeMessage(RESPONSE, direct), decodeMessage(RESPONSE, encodeMessage(RESPONSE, res)));
  });

  test('an empty response, and one with only removals', () => {
    for (const res of [{}, { type_url: NDS, removed_resources: ['name-table|a'], nonce: '2' }]) {
      const direct = encodeDeltaResponse(res);
      assert.ok(direct);
      assert.deepEqual(decodeMessage(RESPONSE, direct), decodeMessage(RESPONSE, encodeMessage(RESPONSE, res)));
    }
  });

  test('the same resource sent on many streams is encoded once; a new version is not served from that cache', () => {
    const r = resource('c', 'v1');
    const a = encodeDeltaResponse({ resources: [r] });
    const b = encodeDeltaResponse({ resources: [{ ...r, version: 'v2' }] });
    assert.ok(a && b);
    assert.equal((decodeMessage(RESPONSE, a).resources as { version: string }[])[0]?.version, 'v1');
    assert.equal((decodeMessage(RESPONSE, b).resources as { version: string }[])[0]?.version, 'v2');
  });

  test('fields it does not write are left to the general encoder', () => {
    assert.equal(encodeDeltaResponse({ control_plane: { identifier: 'x' } }), undefined);
    assert.equal(encodeDeltaResponse({ resources: [{ ...resource('a', '1'), aliases: ['b'] }] }), undefined);
    assert.equal(encodeDeltaResponse({ resources: [{ name: 'a', version: '1', resource: { type_url: CDS, value: 'str' } }] }), undefined);
    assert.equal(encodeDeltaResponse({ nonce: 5 }), undefined);
  });

  test("the ADS service's serializer uses it and falls back for the rest", () => {
    const def = adsServiceDefinition().DeltaAggregatedResources;
    assert.ok(def);
    const res = { type_url: CDS, resources: [resource('a', '1')], nonce: '1' };
    assert.deepEqual(def.responseSerialize(res), encodeDeltaResponse(res));
    const other = { type_url: CDS, control_plane: { identifier: 'cp' } };
    assert.deepEqual(decodeMessage(RESPONSE, def.responseSerialize(other)).control_plane, { identifier: 'cp' });
  });
});
