import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { fromGrpcError, toGrpcError } from '../../../src/api/grpc-errors.js';
import { ErrorCode, vmeshError } from '../../../src/lib/errors.js';

test('a VmeshError crosses gRPC with its code and message, under the status its code maps to', () => {
  const sent = toGrpcError(vmeshError(ErrorCode.TokenUsed, 'join token abc: already used'));
  assert.equal(sent.code, grpc.status.UNAUTHENTICATED);
  const back = fromGrpcError({ code: sent.code, details: sent.details }, 'Join on 127.0.0.1:15012');
  assert.equal(back.code, ErrorCode.TokenUsed);
  assert.equal(back.message, 'join token abc: already used');
});

test('anything else is internal; a transport failure is unavailable and names the call', () => {
  assert.equal(toGrpcError(new Error('boom')).code, grpc.status.INTERNAL);
  const e = fromGrpcError({ code: grpc.status.UNAVAILABLE, details: 'No connection established' }, 'Renew on 198.18.0.1:15012');
  assert.equal(e.code, ErrorCode.Unavailable);
  assert.match(e.message, /^Renew on 198\.18\.0\.1:15012: UNAVAILABLE: No connection established$/);
  // A details text that only looks like a code is not trusted as one.
  assert.equal(fromGrpcError({ code: grpc.status.UNKNOWN, details: 'VMESH_ERR_MADE_UP: x' }, 'Join').code, ErrorCode.Internal);
});
