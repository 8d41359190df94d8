// The node agent's entry point (node dist/src/agent/main.js; deploy/agent-daemonset.yaml): one per
// node, it watches that node's Checkpoints, publishes their archives, collects archives, labels the
// Node. Options are flags or HIATUS_AGENT_* environment variables (flags win).
import http from 'node:http';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { ApiCheckpointStore } from '../checkpoint/store.js';
import { CHECKPOINT_API_VERSION, CHECKPOINT_KIND, type Checkpoint } from '../api/checkpoint.js';
import { findKubeConfig } from '../cluster/kubeconfig.js';
import { LABEL_RUNTIME_RESTORE } from '../api/keys.js';
import { parseQuantity } from '../cluster/quantity.js';
import { Reflector } from '../cluster/reflector.js';
import { checkpointListing } from '../cluster/view.js';
import { parseDuration } from '../config/config.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../log.js';
import { DEFAULT_UPLOAD, NodeAgent, type AgentEvent } from './agent.js';
import { ImageCollector } from './imageGc.js';
import { AgentMetrics } from './metrics.js';
import { Publisher } from './publisher.js';
import { credentialsFromFile, RegistryClient } from './registry.js';
import { readCrio } from './runtimeConfig.js';

const OPTIONS = {
  'node-name': { env: 'NODE_NAME', def: '', help: 'this node (the DaemonSet passes spec.nodeName); required' },
  kubeconfig: { env: 'HIATUS_AGENT_KUBECONFIG', def: '', help: 'kubeconfig path (default: in-cluster)' },
  'checkpoint-dir': {
    env: 'HIATUS_AGENT_CHECKPOINT_DIR',
    def: '/var/lib/kubelet/checkpoints',
    help: "the kubelet's checkpoint directory",
  },
  'state-dir': {
    env: 'HIATUS_AGENT_STATE_DIR',
    def: '/var/lib/hiatus-agent',
    help: 'where upload resume state is kept (a hostPath: survives restarts)',
  },
  registry: {
    env: 'HIATUS_AGENT_REGISTRY',
    def: '',
    help: 'host[:port] of the OCI registry (HTTPS); empty: publish nothing, only collect and label',
  },
  'repository-prefix': {
    env: 'HIATUS_AGENT_REPOSITORY_PREFIX',
    def: 'hiatus',
    help: 'images go to <registry>/<prefix>/<namespace>',
  },
  'registry-credentials-file': {
    env: 'HIATUS_AGENT_REGISTRY_CREDENTIALS_FILE',
    def: '/etc/hiatus/registry/.dockerconfigjson',
    help: 'a mounted kubernetes.io/dockerconfigjson Secret',
  },
  'registry-ca-file': {
    env: 'HIATUS_AGENT_REGISTRY_CA_FILE',
    def: '',
    help: 'PEM CA bundle trusted for the registry, besides the system roots',
  },
  'chunk-size': { env: 'HIATUS_AGENT_CHUNK_SIZE', def: '64Mi', help: 'bytes per upload request (halved on 413)' },
  'upload-concurrency': {
    env: 'HIATUS_AGENT_UPLOAD_CONCURRENCY',
    def: String(DEFAULT_UPLOAD.concurrency),
    help: 'archives uploaded at a time, beside archive collection',
  },
  'upload-min-rate': {
    env: 'HIATUS_AGENT_UPLOAD_MIN_RATE',
    def: '1Mi',
    help: `bytes per second an upload must average: one is abandoned (and retried later) after its size at this rate plus ${DEFAULT_UPLOAD.allowanceMs / 60_000} min`,
  },
  'crio-socket': {
    env: 'HIATUS_AGENT_CRIO_SOCKET',
    def: '/var/run/crio/crio.sock',
    help: "CRI-O's socket, for its effective configuration (GET /config)",
  },
  'orphan-max-age': {
    env: 'HIATUS_AGENT_ORPHAN_MAX_AGE',
    def: '1h',
    help: 'an archive no Checkpoint names is deleted once this old',
  },
  'image-gc-grace': {
    env: 'HIATUS_AGENT_IMAGE_GC_GRACE',
    def: '10m',
    help: 'how long a published image stays in the registry after its Checkpoint is gone (then the agent deletes it)',
  },
  'disk-budget': {
    env: 'HIATUS_AGENT_DISK_BUDGET',
    def: '0',
    help: 'bytes the checkpoint directory may hold (e.g. 50Gi); 0: no budget',
  },
  interval: {
    env: 'HIATUS_AGENT_INTERVAL',
    def: '30s',
    help: 'how often the agent looks for work besides watch events',
  },
  'label-interval': {
    env: 'HIATUS_AGENT_LABEL_INTERVAL',
    def: '5m',
    help: "how often the runtime's restore setting is read again",
  },
  'metrics-port': { env: 'HIATUS_AGENT_METRICS_PORT', def: '9102', help: 'port of /metrics and /healthz' },
  'log-level': { env: 'HIATUS_AGENT_LOG_LEVEL', def: 'info', help: 'debug, info, warn or error' },
} as const;
type Option = keyof typeof OPTIONS;

function usage(): string {
  return `usage: hiatus-agent [options]\n${Object.entries(OPTIONS)
    .map(([f, o]) => `  --${f} VALUE\n      ${o.help} (default ${o.def === '' ? 'none' : o.def}); env ${o.env}`)
    .join('\n')}`;
}

function load(argv: string[], env: NodeJS.ProcessEnv): Record<Option, string> {
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(Object.keys(OPTIONS).map((k) => [k, { type: 'string' }])),
    strict: true,
  });
  const out = {} as Record<Option, string>;
  for (const [k, o] of Object.entries(OPTIONS) as [Option, (typeof OPTIONS)[Option]][])
    out[k] = values[k] ?? env[o.env] ?? o.def;
  return out;
}

function fail(problems: string[]): never {
  process.stderr.write(`hiatus-agent: invalid configuration:\n  - ${problems.join('\n  - ')}\n\n${usage()}\n`);
  process.exit(2);
}

function checkpointEvents(kc: KubeConfig): AgentEvent {
  const core = kc.makeApiClient(CoreV1Api);
  const post = (
    namespace: string,
    involvedObject: object,
    type: string,
    reason: string,
    message: string,
    name: string,
  ) => {
    const now = new Date();
    return core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${name}.`, namespace },
        involvedObject,
        reason,
        message,
        type,
        source: { component: 'hiatus-agent' },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  };
  return async (c: Checkpoint, type, reason, message) => {
    const ns = c.metadata.namespace;
    await post(
      ns,
      {
        apiVersion: CHECKPOINT_API_VERSION,
        kind: CHECKPOINT_KIND,
        namespace: ns,
        name: c.metadata.name,
        uid: c.metadata.uid,
      },
      type,
      reason,
      message,
      c.metadata.name,
    );
    const pod = c.status?.restore?.podName;
    if (pod && !pod.endsWith('*')) {
      await post(
        ns,
        {
          apiVersion: 'v1',
          kind: 'Pod',
          namespace: ns,
          name: pod,
          ...(c.status?.restore?.podUID ? { uid: c.status.restore.podUID } : {}),
        },
        type,
        reason,
        `checkpoint ${c.metadata.name}: ${message}`,
        pod,
      );
    }
  };
}

function main(argv: string[]): void {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const o = load(argv, process.env);
  const problems: string[] = [];
  if (!o['node-name']) problems.push('--node-name (or NODE_NAME) is required');
  if (!LOG_LEVELS.includes(o['log-level'] as LogLevel))
    problems.push(`--log-level: "${o['log-level']}" is not one of ${LOG_LEVELS.join(', ')}`);
  const durations = Object.fromEntries(
    (['orphan-max-age', 'interval', 'label-interval', 'image-gc-grace'] as const).map((k) => [
      k,
      parseDuration(o[k]) ?? (problems.push(`--${k}: "${o[k]}" is not a duration`), 0),
    ]),
  );
  const chunk = parseQuantity(o['chunk-size']);
  if (!chunk || chunk < 1 << 20) problems.push(`--chunk-size: "${o['chunk-size']}" must be a quantity of at least 1Mi`);
  const concurrency = Number(o['upload-concurrency']);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 8)
    problems.push(`--upload-concurrency: "${o['upload-concurrency']}" must be an integer from 1 to 8`);
  const minRate = parseQuantity(o['upload-min-rate']);
  if (!minRate || minRate < 1024)
    problems.push(`--upload-min-rate: "${o['upload-min-rate']}" must be a quantity of at least 1Ki (bytes per second)`);
  const budget = parseQuantity(o['disk-budget']);
  if (budget === undefined || budget < 0) problems.push(`--disk-budget: "${o['disk-budget']}" is not a quantity`);
  const metricsPort = Number(o['metrics-port']);
  if (!Number.isInteger(metricsPort) || metricsPort < 1 || metricsPort > 65535)
    problems.push(`--metrics-port: "${o['metrics-port']}" is not a port`);
  if (problems.length) fail(problems);

  const log = createLogger(o['log-level'] as LogLevel);
  const found = findKubeConfig(o.kubeconfig || undefined, process.env);
  if (!found) fail(['no kubeconfig or in-cluster credentials found']);
  const kc = found.kc;
  const node = o['node-name'];
  const metrics = new AgentMetrics();
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const selector = `spec.source.nodeName=${node}`;
  const checkpoints = new Reflector<Checkpoint, Checkpoint>(
    kc,
    {
      ...checkpointListing(custom, selector),
      onChange: (type, key) => {
        if (type === 'delete') {
          const gone = last.get(key);
          if (gone) agent.checkpointDeleted(gone);
          last.delete(key);
        } else {
          const c = checkpoints.store.get(key);
          if (c) last.set(key, c);
        }
        void agent.kick();
      },
    },
    log,
  );
  // The watch's delete event carries the object, but the Reflector reports keys: keep the last seen.
  const last = new Map<string, Checkpoint>();

  let publisher: Publisher | undefined;
  let images: ImageCollector | undefined;
  if (o.registry) {
    const file = o['registry-credentials-file'];
    const client = new RegistryClient({
      host: o.registry,
      ...(o['registry-ca-file'] ? { caFile: o['registry-ca-file'] } : {}),
      // Read per call: a Secret volume is updated in place when the Secret is rotated.
      credentials: () => credentialsFromFile(file, o.registry),
    });
    publisher = new Publisher({ client, stateDir: o['state-dir'], chunkBytes: chunk!, log });
    images = new ImageCollector({
      client,
      stateDir: o['state-dir'],
      metrics,
      log,
      graceMs: durations['image-gc-grace']!,
    });
  } else {
    log.warn(
      'no --registry: checkpoints are not published (restorable only on their node); archives are still collected',
    );
  }
  // The Reflector's callbacks above call it: they run only once checkpoints.start() below has run.
  const agent = new NodeAgent({
    node,
    checkpointDir: o['checkpoint-dir'],
    checkpoints: () => checkpoints.store.values(),
    synced: () => checkpoints.synced,
    store: new ApiCheckpointStore(kc),
    ...(publisher ? { publisher } : {}),
    ...(images ? { images } : {}),
    repositoryPrefix: o['repository-prefix'],
    gc: { orphanMaxAgeMs: durations['orphan-max-age']!, diskBudgetBytes: budget! },
    upload: { concurrency, minBytesPerSecond: minRate! },
    readRuntime: () => readCrio(o['crio-socket']),
    labelNode: async (value) => {
      await core.patchNode(
        { name: node, body: { metadata: { labels: { [LABEL_RUNTIME_RESTORE]: value ?? null } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    },
    event: checkpointEvents(kc),
    metrics,
    log,
  });
  checkpoints.start();
  void agent.labelRuntime();
  const tick = setInterval(
    () => void agent.kick().catch((e: unknown) => log.error('agent pass failed', { error: String(e) })),
    durations.interval,
  );
  const relabel = setInterval(() => void agent.labelRuntime(), durations['label-interval']);
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      void metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
        res.end(text);
      });
    } else if (req.url === '/healthz') {
      res.end('ok');
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(metricsPort);
  log.info('node agent started', {
    node,
    registry: o.registry || '(none)',
    checkpointDir: o['checkpoint-dir'],
    diskBudget: budget,
    uploadConcurrency: concurrency,
    uploadMinRate: minRate,
  });
  const shutdown = (signal: string) => {
    log.info('stopping: finishing the chunk in flight', { signal });
    clearInterval(tick);
    clearInterval(relabel);
    checkpoints.stop();
    server.close();
    void agent.stop().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 25_000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main(process.argv.slice(2));
