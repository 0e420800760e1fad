import { X509Certificate } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { controllerServiceClient, type HealthReportAck__Output } from '../api/controller-proto.js';
import { edgesFromSnapshot } from '../api/edges.js';
import {
  controllerChannelOptions,
  pemProvider,
  pemUpdates,
  signWorkloadCert,
  trustBundleSha256,
  updatableChannelCredentials,
  type WorkloadCert,
  WorkloadIdentities,
} from '../ca/index.js';
import { installCapture, openCaptureSession, removeCapture } from '../capture/install.js';
import { assignPassthroughSourceV6 } from '../capture/passthrough-source.js';
import { dnsOnlyCapture } from '../capture/plan.js';
import { routeVipRange } from '../capture/vip-route.js';
import type { AgentConfig } from '../config/agent.js';
import { DnsProxy } from '../dns/dns-proxy.js';
import { nameTableFrom } from '../dns/name-table.js';
import { readResolvConf } from '../dns/resolv-conf.js';
import { CONTROLLER_CHANNEL_OPTIONS } from '../lib/backoff.js';
import { ErrorCode, VmeshError } from '../lib/errors.js';
import { listenOn } from '../lib/listen.js';
import type { Logger } from '../lib/logger.js';
import { mergeSnapshots } from '../lib/metrics-registry.js';
import type { NftSession } from '../lib/native.js';
import { err, ok, type Result } from '../lib/result.js';
import { MeshProxy } from '../proxy/proxy.js';
import type { ProxyConfig } from '../proxy/proxy-config.js';
import { uidSecretName } from '../proxy/runtime-types.js';
import { readFileSecrets } from '../proxy/secret/file-secrets.js';
import { secretNames } from '../proxy/secret/names.js';
import { type AppliedConfig, type SecretInput, XdsSync } from '../xds/index.js';
import { NDS, WDS } from '../xds/type-urls.js';
import { controllerTarget } from './controller-target.js';
import { ensureHostCredentials, type HostCreds, onAnyController, renewIfDue } from './credentials.js';
import { HealthReporter } from './health-reporter.js';
import { type CachedWorkload, IdentityCache, nsSa, registryFrom, servedIdentities, uidMap } from './identity-cache.js';
import { certificateNotAfter, startMetricsServer } from './metrics-server.js';
import { takeProxyGroup } from './proxy-group.js';
import { type ProxyRunner, startProxyRunner } from './proxy-runner.js';
import { describeSecret } from './secret-summary.js';

export interface RunningAgent {
  readonly adminPort: number;
  readonly metricsPort: number;
  readonly dnsPort: number;
  readonly proxy?: ProxyRunner;
  readonly sync: XdsSync;
  readonly identities: WorkloadIdentities;
  stop(): Promise<void>;
}

/** Builds the agent: credentials (join or from disk), xDS sync with the last good config, health reports, admin. */
export async function startAgent(cfg: AgentConfig, logger: Logger): Promise<RunningAgent> {
  await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
  if (cfg.capture) takeProxyGroup(cfg.captureConfig.proxyGid, logger);
  // The netlink socket that owns the capture table for this agent's life: if the agent dies by any cause, the
  // kernel deletes the table with it, so the host resolves names and connects as if vmesh were absent.
  const nftSession = cfg.capture ? openCaptureSession(cfg.captureConfig.backend) : undefined;
  if (cfg.capture && !nftSession) {
    // iptables has nothing like an owned table: say once what removes the rules if this process is killed.
    logger.info(
      { backend: cfg.captureConfig.backend },
      'iptables capture outlives this agent if it is killed: systemd (ExecStopPost) removes it then; without systemd run "vmesh capture remove", or use the nftables backend',
    );
  }
  try {
    return await startWith(cfg, logger, nftSession);
  } catch (e) {
    nftSession?.close();
    throw e;
  }
}

async function startWith(cfg: AgentConfig, logger: Logger, nftSession: NftSession | undefined): Promise<RunningAgent> {
  let creds: HostCreds = await ensureHostCredentials(cfg, logger);
  // One provider behind every channel to the controllers: a renewed certificate or a rotated bundle reaches
  // new connections (xDS reconnects, reports) without rebuilding the channels.
  const tls = pemProvider(creds.trustBundlePem, creds.keyPem, creds.certPem);
  const channelCredentials = updatableChannelCredentials(tls);
  const controllers = await controllerTarget(cfg.controllers, logger);

  let proxy: ProxyRunner | undefined;
  // The registry and workload certificates of the last run: a restart with every controller down serves with them.
  const idCache = new IdentityCache(cfg.dataDir, logger.child({ component: 'sds' }));
  const saved = await idCache.load();
  const kept = new Map(saved.certs.map((c) => [nsSa(c.spiffeId), c]));
  // Inbound chains name each workload's SPIFFE id, whose key the agent makes here and has signed; a captured
  // connection presents the identity of the workload (uid) that opened it.
  const identities = new WorkloadIdentities({
    sign: (namespace, serviceAccount) => {
      // A certificate kept on disk is handed out once, as if just signed; it is renewed on its own schedule.
      const c = kept.get(`${namespace}/${serviceAccount}`);
      kept.delete(`${namespace}/${serviceAccount}`);
      if (c) return Promise.resolve(c);
      return onAnyController(cfg.controllers, (address) => signWorkloadCert({ address, host: creds, namespace, serviceAccount }));
    },
    logger: logger.child({ component: 'sds' }),
    onChange: () => {
      updateProxy();
      saveIdentities();
    },
  });
  let registry: readonly CachedWorkload[] = saved.workloads;
  const saveIdentities = () => idCache.save(() => ({ workloads: registry, certs: identities.all() }));
  let fromConfig = new Set<string>();
  let fromRegistry = new Set(registry.map((w) => w.spiffeId));
  // uid -> SPIFFE id of the workloads registered with a uid: connections their processes open present it.
  let byUid = uidMap(registry);
  const wantIdentities = () => identities.setWanted([...fromConfig, ...fromRegistry]);
  // The host's registry arrives as its WDS resource, pushed on every registration: the uid map is right as
  // soon as the certificate is, and a deregistered uid loses its identity with the same push.
  const setRegistry = (next: CachedWorkload[]) => {
    if (JSON.stringify(next) === JSON.stringify(registry)) return;
    registry = next;
    saveIdentities();
    fromRegistry = new Set(next.map((w) => w.spiffeId));
    byUid = uidMap(next);
    wantIdentities();
    // Also when no uid changed: what the proxy presents (and reports) may have.
    updateProxy();
  };
  const applyRegistry = (c: AppliedConfig) => {
    const next = registryFrom(Object.values(c.resources[WDS] ?? {})[0]);
    if (next) setRegistry(next);
  };
  // What the proxy presents, reported at once when it changes: `vmesh workload register` waits for it.
  let serving: ReturnType<typeof servedIdentities> = [];
  let reportServing = () => {};
  const publishServing = () => {
    const now = servedIdentities(registry, (id) => identities.get(id) !== undefined);
    if (JSON.stringify(now) === JSON.stringify(serving)) return;
    serving = now;
    reportServing();
  };
  // What the proxy cannot compile is NACKed, and the last good config stays (in the proxy and on disk).
  // The compiled result is kept, so an in-process proxy applies it without compiling it again.
  let compiled: ProxyConfig | undefined;
  const prepare = (c: AppliedConfig): Result<void, string> => {
    const r = MeshProxy.prepare(c);
    if (!r.ok) return err(r.error);
    compiled = r.value;
    fromConfig = secretNames(r.value);
    wantIdentities();
    return ok(undefined);
  };
  const validate = (typeUrl: string, next: ReadonlyMap<string, unknown>, all: AppliedConfig): Result<void, string> =>
    cfg.proxy ? prepare({ ...all, resources: { ...all.resources, [typeUrl]: Object.fromEntries(next) } }) : ok(undefined);

  const sync = new XdsSync({
    validate,
    address: controllers,
    credentials: channelCredentials,
    channelOptions: controllerChannelOptions(controllers),
    nodeId: cfg.hostName,
    metadata: { mode: cfg.mode, labels: { ...cfg.gatewayLabels } },
    cacheFile: join(cfg.dataDir, 'xds-last-good.json'),
    logger: logger.child({ component: 'xds' }),
  });
  const dns = new DnsProxy({ port: cfg.dnsPort, resolv: await readResolvConf(), logger: logger.child({ component: 'dns' }) });
  const applyNames = (c: AppliedConfig) => dns.setTable(nameTableFrom(Object.values(c.resources[NDS] ?? {})[0]));
  // TCP capture is on exactly while the proxy listens on the outbound port: redirecting to nothing would cut the
  // host off. Until then (no controller, no cached config) traffic flows as if vmesh were absent; once every
  // proxy worker is down, only DNS stays captured (the DNS proxy is the agent's own). Either way virtual IPs are
  // refused at once by their local route.
  // IPv6 is redirected only while the proxy listens on IPv6 too ('full-v4' otherwise): a host without IPv6, or
  // whose [::] ports are taken, keeps its IPv6 traffic direct rather than refused.
  let captured: 'none' | 'dns' | 'full' | 'full-v4' = 'none';
  let stopping = false;
  let captureChain: Promise<void> = Promise.resolve();
  const syncCapture = () => {
    captureChain = captureChain.then(async () => {
      const outbound = proxy?.listening().find((l) => l.port === cfg.captureConfig.outboundPort);
      const full = cfg.captureConfig.ipv6 && outbound?.ipv6 ? 'full' : 'full-v4';
      const fallback = captured !== 'none' && cfg.captureConfig.captureDns ? 'dns' : 'none';
      const want = !cfg.capture || stopping ? captured : outbound ? full : fallback;
      if (want === captured) return;
      try {
        if (want === 'full' || want === 'full-v4') {
          await routeVipRange();
          if (want === 'full') {
            await assignPassthroughSourceV6().catch((e: unknown) =>
              logger.warn({ err: e }, 'inbound IPv6 passthrough goes out from the host address instead of ::6'),
            );
          }
          await installCapture({ ...cfg.captureConfig, ipv6: want === 'full' }, nftSession);
          logger.info({ backend: cfg.captureConfig.backend, ipv6: want === 'full' }, 'capture installed');
        } else if (want === 'dns') {
          // One transaction replaces the table: DNS capture never has a gap.
          await installCapture(dnsOnlyCapture(cfg.captureConfig), nftSession);
          logger.warn('no proxy listens on the outbound port: TCP capture removed until it is back; DNS stays captured');
        } else {
          await removeCapture(cfg.captureConfig.backend, nftSession);
          logger.warn('no proxy listens on the outbound port: capture removed until it is back');
        }
        captured = want;
      } catch (e) {
        logger.error({ err: e }, 'capture change failed');
      }
    });
  };
  if (cfg.capture) {
    // A crashed agent's rules may still be in place, redirecting to a proxy that is gone: until this agent's
    // proxy listens, traffic flows as if vmesh were absent. Installing later replaces the table in one go anyway.
    // A table owned by another live agent cannot be taken over: two agents would fight over one host's capture.
    await removeCapture(cfg.captureConfig.backend, nftSession).catch((e: unknown) => {
      if (e instanceof VmeshError && e.code === ErrorCode.Conflict) throw e;
      logger.warn({ err: e }, 'stale capture not removed');
    });
  }
  proxy = cfg.proxy ? await startProxyRunner(cfg, logger, syncCapture) : undefined;
  let proxyTimer: NodeJS.Timeout | undefined;
  function updateProxy(): void {
    // Types arrive one response at a time, certificates one by one: pass them on once the burst is in.
    if (proxyTimer) return;
    proxyTimer = setTimeout(() => {
      proxyTimer = undefined;
      if (!proxy) return publishServing();
      const files = [...fromConfig].filter((n) => n.startsWith('file'));
      void readFileSecrets(files, cfg.credentialsDir, logger).then((fileSecrets) => {
        proxy?.update(sync.config(), compiled, [...secretList(identities, creds, byUid), ...fileSecrets]);
        publishServing();
      });
    }, 20);
  }
  sync.onChange((typeUrl, c) => {
    if (typeUrl === NDS) applyNames(c);
    if (typeUrl === WDS) applyRegistry(c);
    updateProxy();
  });
  if ((await sync.loadCached()) && cfg.proxy) {
    // Compiled again so the identities it names are wanted before any controller answers.
    const r = prepare(sync.config());
    if (!r.ok) logger.warn({ error: r.error }, 'the cached config does not compile; waiting for a controller');
  }
  applyRegistry(sync.config());
  wantIdentities();
  applyNames(sync.config());
  updateProxy();
  const { port: dnsPort } = await dns.start();
  sync.start();

  const Controller = controllerServiceClient();
  const newClient = () =>
    new Controller(controllers, channelCredentials, {
      ...controllerChannelOptions(controllers),
      'grpc.use_local_subchannel_pool': 1,
      ...CONTROLLER_CHANNEL_OPTIONS,
    }) as never as ConstructorParameters<typeof HealthReporter>[0]['client'];
  let client = newClient();
  // The bundle this host holds everywhere (channels and proxy), reported so a root rotation knows who lags.
  const heldBundle = () => {
    const served = identities.trustBundle();
    return served === undefined || served === creds.trustBundlePem ? trustBundleSha256(creds.trustBundlePem) : 'mixed';
  };
  let refetched = { hash: '', at: 0 };
  const onAck = (ack: HealthReportAck__Output) => {
    // Another bundle on the controller is a root rotation: fetch everything again so the new root is trusted here.
    const want = ack.trustBundleSha256;
    if (want && want !== heldBundle() && (refetched.hash !== want || Date.now() - refetched.at > 30_000)) {
      refetched = { hash: want, at: Date.now() };
      logger.info({ trustBundleSha256: want }, 'the controller has a new trust bundle: fetching certificates again');
      identities.refreshAll();
      renew(true);
    }
  };
  // The same merged proxy snapshot /stats/prometheus renders, grouped by edge for the controller's mesh graph.
  const edges = async () => edgesFromSnapshot(mergeSnapshots((await proxy?.metrics()) ?? []));
  const newReporter = () =>
    new HealthReporter({
      client,
      logger: logger.child({ component: 'health' }),
      onAck,
      bundleSha256: heldBundle,
      edges,
      serving: () => serving,
    });
  let reporter = newReporter();
  reportServing = () => reporter.reportSoon();
  reporter.start();

  function renew(force: boolean): void {
    renewIfDue(cfg, creds, logger, force)
      .then(async (next) => {
        if (!next) return;
        creds = next;
        tls.update(...pemUpdates(creds.trustBundlePem, creds.keyPem, creds.certPem));
        updateProxy();
        // An open connection keeps the certificate it was made with: reconnect so the controller sees the new one.
        sync.reconnect();
        await reporter.stop();
        client.close();
        client = newClient();
        reporter = newReporter();
        reporter.start();
      })
      .catch((e: unknown) => logger.warn({ err: e }, 'renewal check failed'));
  }
  const renewTimer = setInterval(() => {
    renew(false);
    // Gateway credential files may have been replaced on disk: read them again.
    updateProxy();
  }, 30_000);
  renewTimer.unref();

  const admin = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body, null, 2));
    };
    if (req.url === '/config_dump') send(200, sync.config());
    else if (req.url === '/workloads') send(200, reporter.localWorkloads());
    else if (req.url === '/listeners') send(200, proxy?.listening() ?? []);
    else if (req.url === '/proxy') send(200, { pids: proxy?.pids() ?? [], serving: proxy?.serving() ?? 0, workers: cfg.proxyWorkers });
    else if (req.url === '/certs')
      send(
        200,
        identities
          .all()
          .map((c) => ({ spiffeId: c.spiffeId, notBefore: c.notBefore, notAfter: c.notAfter, serial: serialOf(c.certChainPem) })),
      );
    else if (req.url === '/secrets') send(200, secretList(identities, creds, byUid).map(describeSecret));
    else if (req.url === '/ready') send(200, { ready: true, host: cfg.hostName });
    else send(404, { error: { code: 'VMESH_ERR_NOT_FOUND', message: `no admin endpoint ${req.url}` } });
  });
  const adminPort = await listenOn(admin, cfg.adminAddress, cfg.adminPort);
  const metrics = await startMetricsServer({
    address: cfg.metricsAddress,
    port: cfg.metricsPort,
    logger: logger.child({ component: 'metrics' }),
    sources: {
      proxies: () => proxy?.metrics() ?? Promise.resolve([]),
      certificates: () => [
        ...identities.all().map((c) => ({ name: c.spiffeId, notAfter: c.notAfter })),
        { name: 'host', notAfter: certificateNotAfter(creds.certPem) },
      ],
      xds: () => sync.config(),
      ready: () => !!proxy?.listening().some((l) => l.port === cfg.captureConfig.outboundPort),
    },
  });
  logger.info({ host: cfg.hostName, controllers: cfg.controllers, adminPort, dnsPort }, 'agent ready');

  return {
    adminPort,
    metricsPort: metrics.port,
    dnsPort,
    ...(proxy ? { proxy } : {}),
    sync,
    identities,
    async stop() {
      clearInterval(renewTimer);
      identities.stop();
      // Capture comes off first, so nothing is redirected to a proxy that is about to go.
      stopping = true;
      await captureChain;
      if (captured !== 'none')
        await removeCapture(cfg.captureConfig.backend, nftSession).catch((e: unknown) => logger.warn({ err: e }, 'capture removal failed'));
      nftSession?.close();
      if (proxyTimer) clearTimeout(proxyTimer);
      await proxy?.stop(2000);
      await reporter.stop();
      client.close();
      await sync.stop();
      await idCache.flush();
      await dns.stop();
      await new Promise<void>((r) => admin.close(() => r()));
      await metrics.close();
    },
  };
}

/** What the agent's SDS serves: one certificate per SPIFFE id, the host's as `default`, and the trust bundle. */
function secretList(identities: WorkloadIdentities, creds: HostCreds, byUid: ReadonlyMap<number, string>): SecretInput[] {
  const byId = (c: WorkloadCert, name = c.spiffeId) => ({
    name,
    kind: 'certificate' as const,
    certChainPem: c.certChainPem,
    keyPem: c.keyPem,
  });
  return [
    ...identities.all().map((c) => byId(c)),
    // The proxy picks a captured connection's certificate by the uid that opened it.
    ...[...byUid].flatMap(([uid, id]) => {
      const c = identities.get(id);
      return c ? [byId(c, uidSecretName(uid))] : [];
    }),
    { name: 'default', kind: 'certificate', certChainPem: creds.certPem, keyPem: creds.keyPem },
    { name: 'ROOTCA', kind: 'trust', trustedCaPem: identities.trustBundle() ?? creds.trustBundlePem },
  ];
}

function serialOf(chainPem: string): string {
  return new X509Certificate(chainPem).serialNumber;
}
