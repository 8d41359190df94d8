// The imperative shell: configuration, cluster connection, HTTP(S) server, signals.
import { existsSync, readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { CheckpointExecutor } from './checkpoint/executor.js';
import { DirectKubeletClient, ProxyKubeletClient, type KubeletClient } from './checkpoint/kubeletClient.js';
import { ApiCheckpointStore } from './checkpoint/store.js';
import http from 'node:http';
import https from 'node:https';
import { findKubeConfig } from './cluster/kubeconfig.js';
import { NodeFactsCache } from './cluster/nodeFactsCache.js';
import { InformerClusterView, noClusterView, type ClusterView } from './cluster/view.js';
import { ConfigError, loadConfig, wantsHelp, type Config } from './config/config.js';
import { usage } from './config/options.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics/metrics.js';
import { createHandler, createWebhookApp } from './server/app.js';
import { clientCertificateOptions, openPolicy, type CallerPolicy } from './server/auth.js';
import { RequestMemory } from './server/body.js';
import { installProcessGuards } from './server/guards.js';
import { RestoreController } from './restore/controller.js';
import { PlacementController } from './restore/placementController.js';
import type { PublicationOptions } from './restore/publication.js';
import { ManualCheckpointController } from './checkpoint/manualController.js';
import { summarize } from './checkpoint/summary.js';
import { podPlacementWriter } from './cluster/podWriter.js';
import { podEventPoster } from './cluster/events.js';
import { CLAIM_WAIT_MS, RECLAIM_AFTER_MS, createWebhook } from './restore/webhook.js';
import { createPreemptVerb } from './server/preempt.js';
import { PreemptionCompleter } from './preemption/completer.js';
import { MEASURED_GPU_BASE_MS } from './scheduling/cost.js';
import { resourcePolicy } from './scheduling/resources.js';

const NODE_FACTS_LRU_SIZE = 10_000;
// A restore pod still gated this long after its gate was lifted (a failed or lost write) is placed again.
const PLACEMENT_RETRY_AFTER_MS = 10_000;

// How often a preemption being completed looks again at its checkpoints (another replica's show
// only in the watch cache); this replica's own wake it at once.
const COMPLETION_INTERVAL_MS = 250;

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
// How soon a Manual checkpoint request is taken up: someone is watching its progress.
const MANUAL_SWEEP_MS = 500;

function connect(config: Config, log: Logger): { view: ClusterView; kc?: KubeConfig } {
  if (config.noCluster) {
    log.info('running without a cluster (--no-cluster): judging from requests alone');
    return { view: noClusterView };
  }
  const found = findKubeConfig(config.kubeconfig, process.env);
  if (!found) {
    log.warn('no kubeconfig or in-cluster credentials found: running without a cluster, judging from requests alone');
    return { view: noClusterView };
  }
  log.info('watching the cluster', { source: found.source, server: found.kc.getCurrentCluster()?.server });
  return { view: new InformerClusterView(found.kc, log).start(), kc: found.kc };
}

function kubeletClient(config: Config, kc: KubeConfig): KubeletClient {
  if (config.kubeletAccess === 'proxy') return new ProxyKubeletClient(kc);
  return new DirectKubeletClient({
    port: config.kubeletPort,
    insecureSkipVerify: config.kubeletInsecureTls,
    ...(config.kubeletCaFile ? { caFile: config.kubeletCaFile } : {}),
    // Read per call: projected service account tokens rotate.
    token: () =>
      existsSync(SERVICE_ACCOUNT_TOKEN) ? readFileSync(SERVICE_ACCOUNT_TOKEN, 'utf8').trim() : kc.getCurrentUser()?.token,
  });
}

/**
 * Who may call each listener. A listener without a client CA serves anyone only because
 * --insecure-allow-unauthenticated-callers said so (loadConfig refuses otherwise); said here.
 */
function callerPolicies(config: Config, log: Logger): { verbs: CallerPolicy; metrics: CallerPolicy; webhook: CallerPolicy } {
  const policy = (expected: string, caFlag: string, ca: string | undefined, allowedNames: string[]): CallerPolicy =>
    ca ? { expected, caFlag, required: true, allowedNames } : openPolicy(expected);
  const verbs = policy('kube-scheduler', '--client-ca-file', config.clientCaFile, config.allowedClientNames);
  // /metrics carries no pod or node name: any certificate the client CA signed may read it.
  const metrics = policy('a client', '--client-ca-file', config.clientCaFile, []);
  const webhook = policy('the API server', '--webhook-client-ca-file', config.webhookClientCaFile, config.webhookAllowedClientNames);
  if (!verbs.required) {
    log.warn('UNAUTHENTICATED: anyone who reaches the extender port may call filter, prioritize and preempt (and so have any pod checkpointed); --insecure-allow-unauthenticated-callers', { port: config.port });
  } else {
    log.info('extender callers need a client certificate', { ca: config.clientCaFile, allowedNames: config.allowedClientNames });
  }
  if (config.webhookTlsCertFile) {
    if (!webhook.required) {
      log.warn('UNAUTHENTICATED: anyone who reaches the webhook port may post admission reviews (and claim checkpoints); --insecure-allow-unauthenticated-callers', { port: config.webhookPort });
    } else {
      log.info('webhook callers need a client certificate', { ca: config.webhookClientCaFile, allowedNames: config.webhookAllowedClientNames });
    }
  }
  return { verbs, metrics, webhook };
}

export function main(argv: string[]): void {
  if (wantsHelp(argv)) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  let config: Config;
  try {
    config = loadConfig(argv, process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`hiatus: ${e.message}\n\n${usage()}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  installProcessGuards(log);
  const callers = callerPolicies(config, log);
  // One budget for both listeners: they share the heap.
  const memory = new RequestMemory(config.maxRequestMemoryBytes);
  const { view, kc } = connect(config, log);
  const nodeFacts = new NodeFactsCache(NODE_FACTS_LRU_SIZE);
  const metrics = new Metrics({
    cacheSizes: () => ({ ...view.sizes(), node_facts_lru: nodeFacts.size }),
    synced: () => view.synced(),
    checkpointPhases: () => {
      const n: Record<string, number> = {};
      for (const c of view.checkpoints()) n[c.status?.phase ?? 'Unknown'] = (n[c.status?.phase ?? 'Unknown'] ?? 0) + 1;
      return n;
    },
    checkpointPublications: () => summarize(view.checkpoints()).publications,
    checkpointArchiveBytes: () => summarize(view.checkpoints()).archiveBytes,
  });
  const store = kc ? new ApiCheckpointStore(kc) : undefined;
  const event = kc ? podEventPoster(kc, 'hiatus') : undefined;
  const resources = resourcePolicy(config.resourceRules);
  const executor = kc && store
    ? new CheckpointExecutor({
        kubelet: kubeletClient(config, kc),
        store,
        metrics,
        log,
        cached: (ns, name) => view.checkpoint(ns, name),
        cachedAll: () => view.checkpoints(),
        ...(event ? { event } : {}),
        kubeletTimeoutSeconds: config.checkpointTimeoutSeconds,
        maxAgeMs: config.checkpointMaxAgeMs,
        retryFailedAfterMs: config.checkpointRetryAfterMs,
        maxConcurrent: config.maxConcurrentCheckpoints,
        maxPerNode: config.maxCheckpointsPerNode,
        resources,
      })
    : undefined;
  // Evicts what preempt answered `{}` to once the victims' checkpoints are recorded (writes pods
  // and pods/status, as kube-scheduler's preemption does).
  const completer = kc && executor
    ? new PreemptionCompleter({
        view,
        executor,
        writer: podPlacementWriter(kc),
        metrics,
        log,
        defaultPolicy: config.defaultCheckpointPolicy,
        resources,
        maxWaitMs: (config.checkpointTimeoutSeconds + 60) * 1000,
        intervalMs: COMPLETION_INTERVAL_MS,
        ...(event ? { event } : {}),
      }).start()
    : undefined;
  const preempt = createPreemptVerb({
    view,
    metrics,
    log,
    budgetMs: config.schedulerHttpTimeoutMs - config.preemptMarginMs,
    waitMs: config.preemptWaitMs,
    defaultPolicy: config.defaultCheckpointPolicy,
    resources,
    costs: { hostBytesPerSecond: config.hostCheckpointRate, gpuBytesPerSecond: config.gpuCheckpointRates, gpuBaseMs: MEASURED_GPU_BASE_MS },
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
  const server =
    config.tlsCertFile && config.tlsKeyFile
      ? https.createServer(
          {
            cert: readFileSync(config.tlsCertFile),
            key: readFileSync(config.tlsKeyFile),
            ...clientCertificateOptions(config.clientCaFile ? readFileSync(config.clientCaFile) : undefined),
          },
          handler,
        )
      : http.createServer(handler);
  // kube-scheduler keeps connections alive (Go's idle timeout is 90 s); closing them sooner
  // races with a request already on the wire and shows up as a failed scheduling attempt.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.requestTimeout = 60_000;
  const closers: (() => void)[] = [];
  if (kc && store) {
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
      ...(event ? { event } : {}),
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
    restores.start();
    closers.push(() => restores.stop());
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
      ...(event ? { event } : {}),
    });
    placement.start();
    closers.push(() => placement.stop());
    if (executor) {
      // Checkpoints asked for by hand (kubectl hiatus checkpoint): records with reason Manual.
      const manual = new ManualCheckpointController({ view, executor, store, log, resources, intervalMs: MANUAL_SWEEP_MS });
      manual.start();
      closers.push(() => manual.stop());
    }
    if (config.webhookTlsCertFile && config.webhookTlsKeyFile) {
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
        }),
        metrics,
        log,
        maxBodyBytes: config.maxBodyBytes,
        memory,
        callers: callers.webhook,
      });
      const webhook = https.createServer(
        {
          cert: readFileSync(config.webhookTlsCertFile),
          key: readFileSync(config.webhookTlsKeyFile),
          ...clientCertificateOptions(config.webhookClientCaFile ? readFileSync(config.webhookClientCaFile) : undefined),
        },
        webhookApp,
      );
      webhook.keepAliveTimeout = 120_000;
      webhook.listen(config.webhookPort, config.bindAddress, () => {
        log.info('serving the restore admission webhook', { address: `${config.bindAddress}:${config.webhookPort}`, path: '/mutate-pods' });
      });
      closers.push(() => webhook.close());
    } else {
      log.info('restore admission webhook off: no --webhook-tls-cert-file/--webhook-tls-key-file');
    }
  }
  server.listen(config.port, config.bindAddress, () => {
    const addr = server.address();
    log.info('serving', {
      scheme: config.tlsCertFile ? 'https' : 'http',
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
  const shutdown = (signal: string) => {
    log.info('shutting down', { signal });
    view.stop();
    completer?.stop();
    executor?.stop();
    for (const close of closers) close();
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 5_000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main(process.argv.slice(2));
