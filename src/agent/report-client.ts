import * as grpc from '@grpc/grpc-js';
import { controllerServiceClient, type HealthReport, type HealthReportAck__Output as HealthReportAck } from '../api/controller-proto.js';
import { ErrorCode, vmeshError } from '../lib/errors.js';

/** The one controller RPC the health reporter calls, as a typed method rather than the generic client's dynamic one. */
export class ReportHealthClient extends grpc.Client {
  private readonly method: grpc.MethodDefinition<HealthReport, HealthReportAck>;

  constructor(address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) {
    super(address, credentials, options);
    const method = controllerServiceClient().service.ReportHealth;
    if (!method) throw vmeshError(ErrorCode.Internal, 'vmesh.v1.Controller has no ReportHealth method');
    this.method = method;
  }

  ReportHealth(req: HealthReport, cb: (e: grpc.ServiceError | null, res?: HealthReportAck) => void): void {
    this.makeUnaryRequest(this.method.path, this.method.requestSerialize, this.method.responseDeserialize, req, cb);
  }
}
