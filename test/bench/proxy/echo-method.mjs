// The bench's gRPC method, shared by the upstream (upstream.mjs) and the load client (grpc-load.mjs):
// bench.Echo/Get with raw bytes both ways (no protobuf codec), so only transport is measured.
const id = (b) => b;
export const echoService = {
  Get: {
    path: '/bench.Echo/Get',
    requestStream: false,
    responseStream: false,
    requestSerialize: id,
    requestDeserialize: id,
    responseSerialize: id,
    responseDeserialize: id,
  },
};
