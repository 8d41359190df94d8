// The extender process: setupExtender builds every part from a Config and starts nothing; run
// starts them (watches, controllers, listeners) and stop ends them, as kube-scheduler's
// cmd/kube-scheduler/app/server.go splits Setup() from Run(). The entry point is main.ts.
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import { CheckpointExecutor } from './checkpoint/executor.js';
import { DirectKubeletClient, ProxyKubeletClient, type KubeletClient } from './checkpoint/kubeletClient.js';
import { AccessCheck, selfAccessReviewer } from './cluster/access.js';
import { ManualCheckpointController } from './checkpoint/manualController.js';
import { ApiCheckpointStore } from './checkpoint/store.js';
import { summarize } from './checkpoint/summary.js';
import { podEventPoster, type PodEventPoster } from './cluster/events.js';
import { findKubeConfig } from './cluster/kubeconfig.js';
import { NodeFactsCache } from './cluster/nodeFactsCache.js';
import { podPlacementWriter } from './cluster/podWriter.js';
import { InformerClusterView, noClusterView, type ClusterView } from './cluster/view.js';
import type { Config } from './config/config.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics/metrics.js';
import { PreemptionCompleter } from './preemption/completer.js';
import { RestoreController } from './restore/controller.js';
import { PlacementController } from './restore/placementController.js';
import type { PublicationOptions } from './restore/publication.js';
import { CLAIM_WAIT_MS, RECLAIM_AFTER_MS, createWebhook } from './restore/webhook.js';
import { MEASURED_GPU_BASE_MS } from './scheduling/cost.js';
import { resourcePolicy, type ResourcePolicy } from './scheduling/resources.js';
import { createHandler, createWebhookApp } from './server/app.js';
import { openPolicy, type CallerPolicy } from './server/auth.js';
import { RequestMemory } from './server/body.js';
import { createPreemptVerb } from './server/preempt.js';
import { ServingTls, type TlsListener } from './server/servingTls.js';

const NODE_FACTS_LRU_SIZE = 10_000;
// A restore pod still gated this long after its gate was lifted (a failed or lost write) is placed again.
const PLACEMENT_RETRY_AFTER_MS = 10_000;
// How often the extender asks whether it may still lift gates (patch pods): an operator who applies
// deploy/rbac-placement-gate.yaml sees restore pods gated again within this.
const GATE_ACCESS_INTERVAL_MS = 120_000;

// How often a preemption being completed looks again at its checkpoints (another replica's show
// only in the watch cache); this replica's own wake it at once.
const COMPLETION_INTERVAL_MS = 250;

// How often each TLS listener reads its certificate, key and client CA again. The kubelet updates a
// mounted Secret within its sync period (1 min by default) plus its Secret cache's propagation
// delay (kubernetes.io/docs/concepts/configuration/secret, "Mounted Secrets are updated
// automatically"); a few seconds more hardly add to that.
const TLS_RELOAD_INTERVAL_MS = 5_000;

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
// How soon a Manual checkpoint request is taken up: someone is watching its progress.
const MANUAL_SWEEP_MS = 500;

export interface ExtenderDeps {
  log: Logger;
  /** Where the kubeconfig is looked for ($KUBECONFIG) when --kubeconfig names none. */
  env: NodeJS.ProcessEnv;
}

export interface Extender {
  /** Starts the cluster watches, the controllers and both listeners. */
  run(): void;
  /** Stops everything run started; resolves once the extender listener has closed. */
  stop(): Promise<void>;
}

/** Something run starts and stop ends, in this order (stop in the same order as start). */
interface Part {
  start(): void;
  stop(): void;
}

/** The parts that need the API server: present only when the extender has a cluster. */
interface ClusterParts {
  kc: KubeConfig;
  store: ApiCheckpointStore;
  event: PodEventPoster;
  executor: CheckpointExecutor;
}

export function setupExtender(config: Config, deps: ExtenderDeps): Extender {
  const { log } = deps;
  const callers = callerPolicies(config, log);
  // One budget for both listeners: they share the heap.
  const memory = new RequestMemory(config.maxRequestMemoryBytes);
  const { view, informers, kc } = connect(config, log, deps.env);
  const nodeFacts = new NodeFactsCache(NODE_FACTS_LRU_SIZE);
  const metrics = viewMetrics(view, nodeFacts, Boolean(config.checkpointImages));
  const resources = resourcePolicy(config.resourceRules);
  const cluster = kc ? clusterParts(config, kc, view, metrics, log, resources) : undefined;
  const executor = cluster?.executor;
  // Evicts what preempt answered `{}` to once the victims' checkpoints are recorded (writes pods
  // and pods/status, as kube-scheduler's preemption does).
  const completer = cluster
    ? new PreemptionCompleter({
        view,
        executor: cluster.executor,
        writer: podPlacementWriter(cluster.kc),
        metrics,
        log,
        defaultPolicy: config.defaultCheckpointPolicy,
        resources,
        maxWaitMs: (config.checkpointTimeoutSeconds + 60) * 1000,
        intervalMs: COMPLETION_INTERVAL_MS,
        event: cluster.event,
      })
    : undefined;
  const preempt = createPreemptVerb({
    view,
    metrics,
    log,
    budgetMs: config.schedulerHttpTimeoutMs - config.preemptMarginMs,
    waitMs: config.preemptWaitMs,
    defaultPolicy: config.defaultCheckpointPolicy,
    resources,
    costs: {
      hostBytesPerSecond: config.hostCheckpointRate,
      gpuBytesPerSecond: config.gpuCheckpointRates,
      gpuBaseMs: MEASURED_GPU_BASE_MS,
    },
    ...(executor ? { executor } : {}),
    ...(completer ? { completer } : {}),
  });
  const handler = createHandler({
    ctx: { view, nodeFacts, metrics, strict: config.strict, zoneScore: config.zoneScore },
    view,
    metrics,
    log,
    maxBodyBytes: config.maxBodyBytes,
    memory,
    preempt,
    verbCallers: callers.verbs,
    metricsCallers: callers.metrics,
  });
  const verbTls =
    config.tlsCertFile && config.tlsKeyFile
      ? servingTls('extender', config.tlsCertFile, config.tlsKeyFile, config.clientCaFile, handler, metrics, log)
      : undefined;
  const server = verbServer(handler, verbTls);
  const parts: Part[] = [
    { start: () => informers?.start(), stop: () => view.stop() },
    ...(verbTls ? [verbTls] : []),
    ...(completer ? [{ start: () => completer.start(), stop: () => completer.stop() }] : []),
    ...(executor ? [{ start: () => undefined, stop: () => executor.stop() }] : []),
    ...(cluster ? restoreParts(config, cluster, view, metrics, log, resources, memory, callers.webhook) : []),
  ];
  return {
    run() {
      for (const part of parts) part.start();
      server.listen(config.port, config.bindAddress, () => {
        const addr = server.address();
        log.info('serving', {
          scheme: verbTls ? 'https' : 'http',
          clientAuth: callers.verbs.required,
          maxBodyBytes: config.maxBodyBytes,
          maxRequestMemoryBytes: config.maxRequestMemoryBytes,
          address: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : String(addr),
          mode: view.mode,
          strict: config.strict,
          zoneScore: config.zoneScore,
          preemptBudgetMs: config.schedulerHttpTimeoutMs - config.preemptMarginMs,
          preemptWaitMs: config.preemptWaitMs,
          defaultCheckpointPolicy: config.defaultCheckpointPolicy,
          kubeletAccess: config.kubeletAccess,
        });
      });
    },
    stop() {
      for (const part of parts) part.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      return closed;
    },
  };
}

function connect(
  config: Config,
  log: Logger,
  env: NodeJS.ProcessEnv,
): { view: ClusterView; informers?: InformerClusterView; kc?: KubeConfig } {
  if (config.noCluster) {
    log.info('running without a cluster (--no-cluster): judging from requests alone');
    return { view: noClusterView };
  }
  const found = findKubeConfig(config.kubeconfig, env);
  if (!found) {
    log.warn('no kubeconfig or in-cluster credentials found: running without a cluster, judging from requests alone');
    return { view: noClusterView };
  }
  log.info('watching the cluster', { source: found.source, server: found.kc.getCurrentCluster()?.server });
  const informers = new InformerClusterView(found.kc, log);
  return { view: informers, informers, kc: found.kc };
}

function viewMetrics(view: ClusterView, nodeFacts: NodeFactsCache, publishing: boolean): Metrics {
  return new Metrics({
    cacheSizes: () => ({ ...view.sizes(), node_facts_lru: nodeFacts.size }),
    synced: () => view.synced(),
    checkpointPhases: () => {
      const n: Record<string, number> = {};
      for (const c of view.checkpoints()) n[c.status?.phase ?? 'Unknown'] = (n[c.status?.phase ?? 'Unknown'] ?? 0) + 1;
      return n;
    },
    checkpointPublications: () => summarize(view.checkpoints(), publishing).publications,
    checkpointArchiveBytes: () => summarize(view.checkpoints(), publishing).archiveBytes,
  });
}

function clusterParts(
  config: Config,
  kc: KubeConfig,
  view: ClusterView,
  metrics: Metrics,
  log: Logger,
  resources: ResourcePolicy,
): ClusterParts {
  const store = new ApiCheckpointStore(kc);
  const event = podEventPoster(kc, 'hiatus');
  const executor = new CheckpointExecutor({
    kubelet: kubeletClient(config, kc),
    store,
    metrics,
    log,
    cached: (ns, name) => view.checkpoint(ns, name),
    cachedAll: () => view.checkpoints(),
    event,
    kubeletTimeoutSeconds: config.checkpointTimeoutSeconds,
    maxAgeMs: config.checkpointMaxAgeMs,
    retryFailedAfterMs: config.checkpointRetryAfterMs,
    maxConcurrent: config.maxConcurrentCheckpoints,
    maxPerNode: config.maxCheckpointsPerNode,
    resources,
  });
  return { kc, store, event, executor };
}

function kubeletClient(config: Config, kc: KubeConfig): KubeletClient {
  if (config.kubeletAccess === 'proxy') return new ProxyKubeletClient(kc);
  return new DirectKubeletClient({
    port: config.kubeletPort,
    insecureSkipVerify: config.kubeletInsecureTls,
    ...(config.kubeletCaFile ? { caFile: config.kubeletCaFile } : {}),
    // Read per call: projected service account tokens rotate.
    token: () =>
      existsSync(SERVICE_ACCOUNT_TOKEN)
        ? readFileSync(SERVICE_ACCOUNT_TOKEN, 'utf8').trim()
        : kc.getCurrentUser()?.token,
  });
}

/**
 * Who may call each listener. A listener without a client CA serves anyone only because
 * --insecure-allow-unauthenticated-callers said so (loadConfig refuses otherwise); said here.
 */
function callerPolicies(
  config: Config,
  log: Logger,
): { verbs: CallerPolicy; metrics: CallerPolicy; webhook: CallerPolicy } {
  const policy = (expected: string, caFlag: string, ca: string | undefined, allowedNames: string[]): CallerPolicy =>
    ca ? { expected, caFlag, required: true, allowedNames } : openPolicy(expected);
  const verbs = policy('kube-scheduler', '--client-ca-file', config.clientCaFile, config.allowedClientNames);
  // /metrics carries no pod or node name: any certificate the client CA signed may read it.
  const metrics = policy('a client', '--client-ca-file', config.clientCaFile, []);
  const webhook = policy(
    'the API server',
    '--webhook-client-ca-file',
    config.webhookClientCaFile,
    config.webhookAllowedClientNames,
  );
  const announce = (p: CallerPolicy, port: number, listener: string, open: string, ca?: string) => {
    if (!p.required) {
      log.warn(
        `UNAUTHENTICATED: anyone who reaches the ${listener} port may ${open}; --insecure-allow-unauthenticated-callers`,
        { port },
      );
    } else {
      log.info(`${listener} callers need a client certificate`, { ca, allowedNames: p.allowedNames });
    }
  };
  announce(
    verbs,
    config.port,
    'extender',
    'call filter, prioritize and preempt (and so have any pod checkpointed)',
    config.clientCaFile,
  );
  if (config.webhookTlsCertFile) {
    announce(
      webhook,
      config.webhookPort,
      'webhook',
      'post admission reviews (and claim checkpoints)',
      config.webhookClientCaFile,
    );
  }
  return { verbs, metrics, webhook };
}

/** An HTTPS server whose certificate, key and client CA are read now and again when they change. */
function servingTls(
  listener: TlsListener,
  cert: string,
  key: string,
  ca: string | undefined,
  handler: http.RequestListener,
  metrics: Metrics,
  log: Logger,
): ServingTls {
  return new ServingTls({
    listener,
    files: { cert, key, ...(ca ? { ca } : {}) },
    handler,
    log,
    expiry: metrics.tlsCertificateExpiry,
    intervalMs: TLS_RELOAD_INTERVAL_MS,
  });
}

/** The filter/prioritize/preempt listener: HTTPS when given a certificate. */
function verbServer(handler: http.RequestListener, tls: ServingTls | undefined): http.Server {
  const server = tls?.server ?? http.createServer(handler);
  // kube-scheduler keeps connections alive (Go's idle timeout is 90 s); closing them sooner
  // races with a request already on the wire and shows up as a failed scheduling attempt.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 60_000;
  return server;
}

/** Restore and retention, restore placement, Manual checkpoints and the restore webhook. */
function restoreParts(
  config: Config,
  cluster: ClusterParts,
  view: ClusterView,
  metrics: Metrics,
  log: Logger,
  resources: ResourcePolicy,
  memory: RequestMemory,
  webhookCallers: CallerPolicy,
): Part[] {
  const { kc, store, event, executor } = cluster;
  const publication: PublicationOptions = {
    ...(config.checkpointImages ? { images: config.checkpointImages } : {}),
    waitMs: config.publicationWaitMs,
    ...(config.restoreImagePullSecret ? { pullSecret: config.restoreImagePullSecret } : {}),
  };
  const restores = new RestoreController({
    view,
    store,
    metrics,
    log,
    event,
    restoreTimeoutMs: config.restoreTimeoutMs,
    claimGraceMs: config.restoreClaimGraceMs,
    lifecycleIntervalMs: config.restoreReconcileIntervalMs,
    retentionIntervalMs: config.retentionIntervalMs,
    retention: {
      maxPerWorkload: config.retentionMaxPerWorkload,
      maxAgeMs: config.retentionMaxAgeMs,
      consumedTtlMs: config.retentionConsumedTtlMs,
    },
  });
  // Gates only a replica may lift, with patch on pods, which deploy/rbac-placement-gate.yaml grants
  // and `kubectl apply -k deploy/` leaves out: without it the webhook gates nothing.
  const gates =
    config.restorePlacement === 'gate' || (config.checkpointImages && config.publicationWaitMs > 0)
      ? new AccessCheck({
          review: selfAccessReviewer(kc),
          attributes: { verb: 'patch', resource: 'pods', group: '' },
          intervalMs: GATE_ACCESS_INTERVAL_MS,
          log,
          without:
            'restore pods are not gated (with --checkpoint-images, a pod whose images are not yet published restores on its checkpoint node only; --restore-placement gate places as nominate): apply deploy/rbac-placement-gate.yaml',
        })
      : undefined;
  // Runs whatever --restore-placement says: it lifts gates that another replica, or this one
  // before a configuration change, put on pods; with score it nominates nothing ungated.
  const placement = new PlacementController({
    view,
    writer: podPlacementWriter(kc),
    metrics,
    log,
    strict: config.strict,
    nominateUngated: config.restorePlacement !== 'score',
    retryAfterMs: PLACEMENT_RETRY_AFTER_MS,
    sweepIntervalMs: config.restoreReconcileIntervalMs,
    publication,
    event,
    ...(gates ? { onForbidden: () => void gates.refresh() } : {}),
  });
  // Checkpoints asked for by hand (kubectl hiatus checkpoint): records with reason Manual.
  const manual = new ManualCheckpointController({ view, executor, store, log, resources, intervalMs: MANUAL_SWEEP_MS });
  const parts: Part[] = [...(gates ? [gates] : []), restores, placement, manual];
  if (!(config.webhookTlsCertFile && config.webhookTlsKeyFile)) {
    log.info('restore admission webhook off: no --webhook-tls-cert-file/--webhook-tls-key-file');
    return parts;
  }
  // Live reads of a checkpointed pod the cache shows running (webhook.ts, sourceStillRuns).
  const pods = podPlacementWriter(kc);
  const webhookApp = createWebhookApp({
    mutatePods: createWebhook({
      view,
      store,
      metrics,
      log,
      maxAgeMs: config.retentionMaxAgeMs,
      reclaimAfterMs: RECLAIM_AFTER_MS,
      claimWaitMs: CLAIM_WAIT_MS,
      restoreSchedulers: config.restoreSchedulers,
      placementGate: config.restorePlacement === 'gate',
      publication,
      gatesLiftable: () => gates?.allowed() ?? true,
      readPod: (namespace, name, signal) => pods.getPod(namespace, name, signal),
    }),
    metrics,
    log,
    maxBodyBytes: config.maxBodyBytes,
    memory,
    callers: webhookCallers,
  });
  const tls = servingTls(
    'webhook',
    config.webhookTlsCertFile,
    config.webhookTlsKeyFile,
    config.webhookClientCaFile,
    webhookApp,
    metrics,
    log,
  );
  const webhook = tls.server;
  webhook.keepAliveTimeout = 120_000;
  const address = `${config.bindAddress}:${config.webhookPort}`;
  parts.push({
    start: () => {
      tls.start();
      webhook.listen(config.webhookPort, config.bindAddress, () =>
        log.info('serving the restore admission webhook', { address, path: '/mutate-pods' }),
      );
    },
    stop: () => {
      tls.stop();
      webhook.close();
    },
  });
  return parts;
}
