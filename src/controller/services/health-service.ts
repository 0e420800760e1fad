import type { ControllerHandlers, LocalWorkload, ServedIdentity__Output } from '../../api/controller-proto.js';
import { edgesFromMessages } from '../../api/edge-messages.js';
import { toGrpcError } from '../../api/grpc-errors.js';
import { type PeerCall, parseSpiffeId } from '../../ca/index.js';
import type { HealthTracker, ServedIdentity } from '../../discovery/health.js';
import type { VmeshError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Result } from '../../lib/result.js';
import type { EdgeTracker } from './edge-tracker.js';

export interface HealthServiceDeps {
  readonly tracker: HealthTracker;
  /** The calling host, from its mTLS certificate (ca's authenticatePeer). */
  readonly authenticate: (call: PeerCall) => Result<{ host: string }, VmeshError>;
  readonly reportIntervalMs: number;
  readonly logger: Logger;
  /** Records the host's last contact durably (HostRegistry.touch). */
  readonly touch?: (host: string) => Promise<void>;
  /** The workloads registered on a host, which its agent probes. */
  readonly workloadsOn: (host: string) => LocalWorkload[];
  /** Announced in every ack, so agents notice a new trust bundle (root rotation) within one report. */
  readonly trustBundleSha256?: () => string;
  /** Records which trust bundle the host holds (root rotation waits for every live host). */
  readonly onBundle?: (host: string, sha256: string) => void;
  /** Keeps the host's edge telemetry for the mesh graph. */
  readonly edges?: EdgeTracker;
  readonly now?: () => number;
}

/** vmesh.v1.Controller/ReportHealth: a host reports for itself only, as its certificate says. */
export function reportHealthHandler(deps: HealthServiceDeps): ControllerHandlers['ReportHealth'] {
  return (call, cb) => {
    const who = deps.authenticate(call);
    if (!who.ok) {
      deps.logger.warn({ peer: call.getPeer(), code: who.error.code }, `ReportHealth refused: ${who.error.message}`);
      cb(toGrpcError(who.error));
      return;
    }
    const host = who.value.host;
    const local = deps.workloadsOn(host);
    const mine = new Set(local.map((w) => `${w.namespace}/${w.name}`));
    const foreign = call.request.workloads.filter((w) => !mine.has(`${w.namespace}/${w.name}`));
    if (foreign.length > 0) {
      // A host's certificate speaks for that host only: reports on other hosts' workloads are dropped.
      deps.logger.warn(
        { host, workloads: foreign.map((w) => `${w.namespace}/${w.name}`) },
        'ReportHealth: ignored workloads not on this host',
      );
    }
    deps.tracker.report(
      host,
      call.request.workloads
        .filter((w) => mine.has(`${w.namespace}/${w.name}`))
        .map((w) => ({ namespace: w.namespace, name: w.name, healthy: w.healthy })),
    );
    deps.tracker.recordServing(host, servedIdentities(call.request.serving ?? []));
    deps.edges?.record(host, (deps.now ?? Date.now)(), edgesFromMessages(call.request.edges));
    // A SHA-256 in hex, or "mixed" while the agent is between bundles; anything else would only be kept in memory.
    const sha = call.request.trustBundleSha256;
    if (sha && /^([0-9a-f]{64}|mixed)$/.test(sha)) deps.onBundle?.(host, sha);
    deps.touch?.(host).catch((e: unknown) => deps.logger.warn({ err: e, host }, 'could not record host contact'));
    cb(null, { nextReportMs: String(deps.reportIntervalMs), workloads: local, trustBundleSha256: deps.trustBundleSha256?.() ?? '' });
  };
}

function servedIdentities(list: readonly ServedIdentity__Output[]): ServedIdentity[] {
  return list.flatMap((s) => {
    const id = parseSpiffeId(s.spiffeId);
    if (!id.ok || id.value.kind !== 'workload') return [];
    return [{ namespace: id.value.namespace, serviceAccount: id.value.serviceAccount, ...(s.hasUid ? { uid: s.uid } : {}) }];
  });
}
