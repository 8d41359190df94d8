// Configuration from flags and environment (flags win), validated once at start.
import { parseArgs } from 'node:util';
import { parseQuantity } from '../cluster/quantity.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { parseNames } from '../server/auth.js';
import { minimumRequestMemory } from '../server/body.js';
import { DEFAULT_HOST_RATE, MEASURED_GPU_RATES, parseGpuRates, parseHostRate } from '../scheduling/cost.js';
import { parseResourceRules, type ResourceRule } from '../scheduling/resources.js';
import { CHECKPOINT_POLICIES, type CheckpointPolicy } from '../scheduling/victimPolicy.js';

export type KubeletAccess = 'direct' | 'proxy';

export interface Config {
  port: number;
  bindAddress: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** CA whose client certificates may call the verbs and /metrics. */
  clientCaFile?: string;
  /** CN or DNS SAN a verb caller's certificate must carry; empty: any the CA signed. */
  allowedClientNames: string[];
  /** CA whose client certificates may call the restore webhook (the API server's). */
  webhookClientCaFile?: string;
  webhookAllowedClientNames: string[];
  /** Listeners without a client CA serve anyone: an explicit choice, logged at start. */
  insecureAllowUnauthenticatedCallers: boolean;
  /** prioritize score for a node in the checkpoint's zone (the holder gets 10). */
  zoneScore: number;
  /** Reject nodes whose compatibility facts are unknown. */
  strict: boolean;
  maxBodyBytes: number;
  /** Estimated memory of all request bodies being served at once (src/server/body.ts). */
  maxRequestMemoryBytes: number;
  logLevel: LogLevel;
  noCluster: boolean;
  kubeconfig?: string;
  /** The extender's httpTimeout in the scheduler configuration. */
  schedulerHttpTimeoutMs: number;
  /** preempt answers within schedulerHttpTimeout minus this. */
  preemptMarginMs: number;
  /** Longest preempt holds kube-scheduler's cycle for checkpoints before hiatus completes the preemption itself. */
  preemptWaitMs: number;
  defaultCheckpointPolicy: CheckpointPolicy;
  /** Extended resources known to be checkpointable or not, over the built-in list (src/scheduling/resources.ts). */
  resourceRules: ResourceRule[];
  /** Host memory a checkpoint writes per second (the cost model, src/scheduling/cost.ts), bytes/s. */
  hostCheckpointRate: number;
  /** GPU memory copied to host per second by GPU product ("*": any other), bytes/s. */
  gpuCheckpointRates: Map<string, number>;
  kubeletAccess: KubeletAccess;
  kubeletPort: number;
  kubeletCaFile?: string;
  kubeletInsecureTls: boolean;
  checkpointTimeoutSeconds: number;
  checkpointMaxAgeMs: number;
  checkpointRetryAfterMs: number;
  maxConcurrentCheckpoints: number;
  maxCheckpointsPerNode: number;
  webhookPort: number;
  webhookTlsCertFile?: string;
  webhookTlsKeyFile?: string;
  restoreTimeoutMs: number;
  restoreClaimGraceMs: number;
  restoreReconcileIntervalMs: number;
  /**
   * schedulerName of a restore pod -> the scheduler profile it is moved to (one that scores
   * every node); a name not listed is left as it is.
   */
  restoreSchedulers: Map<string, string>;
  restorePlacement: RestorePlacement;
  /** Where node agents publish checkpoint images (host[:port]/prefix); undefined: none do. */
  checkpointImages?: string;
  /** How long a restore pod is held for its checkpoint's images; 0: not held. */
  publicationWaitMs: number;
  /** A Secret added to the imagePullSecrets of restore pods given checkpoint images. */
  restoreImagePullSecret?: string;
  retentionMaxPerWorkload: number;
  retentionMaxAgeMs: number;
  retentionConsumedTtlMs: number;
  retentionIntervalMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * How a restore pod is steered to its checkpoint's node: nominate (its nominatedNodeName, best
 * effort), gate (the same, held back by a scheduling gate until written), score (prioritize only).
 */
export type RestorePlacement = 'nominate' | 'gate' | 'score';
const RESTORE_PLACEMENTS: readonly RestorePlacement[] = ['nominate', 'gate', 'score'];

interface OptionSpec {
  flag: string;
  env: string;
  type: 'string' | 'boolean';
  help: string;
  default?: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  { flag: 'port', env: 'HIATUS_PORT', type: 'string', default: '8888', help: 'port to serve the extender API on' },
  { flag: 'bind-address', env: 'HIATUS_BIND_ADDRESS', type: 'string', default: '0.0.0.0', help: 'address to listen on' },
  { flag: 'tls-cert-file', env: 'HIATUS_TLS_CERT_FILE', type: 'string', help: 'PEM certificate: serve HTTPS (with --tls-key-file)' },
  { flag: 'tls-key-file', env: 'HIATUS_TLS_KEY_FILE', type: 'string', help: 'PEM private key for --tls-cert-file' },
  { flag: 'client-ca-file', env: 'HIATUS_CLIENT_CA_FILE', type: 'string', help: 'PEM CA bundle: only clients with a certificate it signed (kube-scheduler\'s tlsConfig.certFile/keyFile) may call filter, prioritize, preempt and /metrics; needs --tls-cert-file' },
  { flag: 'allowed-client-names', env: 'HIATUS_ALLOWED_CLIENT_NAMES', type: 'string', default: '', help: 'comma-separated: a verb caller\'s certificate must carry one of these as CN or DNS subjectAltName (empty: any certificate --client-ca-file signed); /metrics takes any' },
  { flag: 'webhook-client-ca-file', env: 'HIATUS_WEBHOOK_CLIENT_CA_FILE', type: 'string', help: 'PEM CA bundle: only clients with a certificate it signed (the API server, through its admission configuration) may call the restore webhook' },
  { flag: 'webhook-allowed-client-names', env: 'HIATUS_WEBHOOK_ALLOWED_CLIENT_NAMES', type: 'string', default: '', help: 'comma-separated: the webhook caller\'s certificate must carry one of these as CN or DNS subjectAltName (empty: any certificate --webhook-client-ca-file signed)' },
  { flag: 'insecure-allow-unauthenticated-callers', env: 'HIATUS_INSECURE_ALLOW_UNAUTHENTICATED_CALLERS', type: 'boolean', help: 'serve a listener that has no client CA to anyone who reaches it (anyone could then drive preemption and checkpoint any pod): for local trials only' },
  { flag: 'zone-score', env: 'HIATUS_ZONE_SCORE', type: 'string', default: '5', help: 'score 0..10 for nodes in the checkpoint\'s zone' },
  { flag: 'strict', env: 'HIATUS_STRICT', type: 'boolean', help: 'reject nodes whose architecture, CPU features or runtime are unknown' },
  { flag: 'max-body-bytes', env: 'HIATUS_MAX_BODY_BYTES', type: 'string', default: '16Mi', help: 'largest request body accepted (e.g. 16Mi)' },
  { flag: 'max-request-memory', env: 'HIATUS_MAX_REQUEST_MEMORY', type: 'string', default: '192Mi', help: 'estimated memory all request bodies being served at once may take (about 5-9 bytes per body byte); beyond it requests get 503; at least 5 x --max-body-bytes' },
  { flag: 'log-level', env: 'HIATUS_LOG_LEVEL', type: 'string', default: 'info', help: 'debug, info, warn or error' },
  { flag: 'no-cluster', env: 'HIATUS_NO_CLUSTER', type: 'boolean', help: 'run without a Kubernetes API: judge from requests alone' },
  { flag: 'kubeconfig', env: 'HIATUS_KUBECONFIG', type: 'string', help: 'kubeconfig path (default: in-cluster, $KUBECONFIG, ~/.kube/config)' },
  { flag: 'scheduler-http-timeout', env: 'HIATUS_SCHEDULER_HTTP_TIMEOUT', type: 'string', default: '5s', help: 'the httpTimeout of this extender in the KubeSchedulerConfiguration' },
  { flag: 'preempt-margin', env: 'HIATUS_PREEMPT_MARGIN', type: 'string', default: '1s', help: 'preempt answers this long before the scheduler\'s httpTimeout' },
  {
    flag: 'preempt-wait',
    env: 'HIATUS_PREEMPT_WAIT',
    type: 'string',
    default: '1s',
    help: 'longest preempt holds kube-scheduler\'s scheduling cycle (every pod waits meanwhile) for its victims\' checkpoints; slower ones finish in the background and hiatus then evicts the victims itself; 0 never waits; capped by --scheduler-http-timeout minus --preempt-margin',
  },
  { flag: 'default-checkpoint-policy', env: 'HIATUS_DEFAULT_CHECKPOINT_POLICY', type: 'string', default: 'Never', help: 'policy for victims whose pod and PriorityClass say none: Required, BestEffort or Never' },
  {
    flag: 'resource-checkpointing',
    env: 'HIATUS_RESOURCE_CHECKPOINTING',
    type: 'string',
    default: '',
    help: 'NAME=MODE,...: whether a victim holding extended resource NAME (or a prefix ending in *) can be checkpointed: checkpointable, not-checkpointable, or cuda (an NVIDIA GPU: on GPU-checkpoint capable nodes only); the most specific name wins, over a built-in list; names nothing matches are not-checkpointable',
  },
  {
    flag: 'host-checkpoint-rate',
    env: 'HIATUS_HOST_CHECKPOINT_RATE',
    type: 'string',
    default: DEFAULT_HOST_RATE,
    help: 'host memory a checkpoint writes per second, end to end (e.g. 128Mi): estimates each victim\'s checkpoint time, a tie-breaker among candidates',
  },
  {
    flag: 'gpu-checkpoint-rates',
    env: 'HIATUS_GPU_CHECKPOINT_RATES',
    type: 'string',
    default: MEASURED_GPU_RATES,
    help: 'PRODUCT=RATE,...: GPU memory the NVIDIA driver copies to host per second while checkpointing, by nvidia.com/gpu.product (* for any other); the default is measured on an H200 (benchmarks/gpu/checkpoint-rates.py measures yours)',
  },
  { flag: 'kubelet-access', env: 'HIATUS_KUBELET_ACCESS', type: 'string', default: 'direct', help: 'direct (node:10250, needs nodes/checkpoint) or proxy (through the API server, needs nodes/proxy)' },
  { flag: 'kubelet-port', env: 'HIATUS_KUBELET_PORT', type: 'string', default: '10250', help: 'kubelet port when the Node does not publish one' },
  { flag: 'kubelet-ca-file', env: 'HIATUS_KUBELET_CA_FILE', type: 'string', help: 'CA bundle that signs kubelet serving certificates (direct access)' },
  { flag: 'kubelet-insecure-tls', env: 'HIATUS_KUBELET_INSECURE_TLS', type: 'boolean', help: 'do not verify kubelet serving certificates (direct access)' },
  { flag: 'checkpoint-timeout', env: 'HIATUS_CHECKPOINT_TIMEOUT', type: 'string', default: '5m', help: 'longest a container checkpoint may take (sent to the kubelet as ?timeout=)' },
  { flag: 'checkpoint-max-age', env: 'HIATUS_CHECKPOINT_MAX_AGE', type: 'string', default: '10m', help: 'a Ready checkpoint older than this is taken again before eviction' },
  { flag: 'checkpoint-retry-after', env: 'HIATUS_CHECKPOINT_RETRY_AFTER', type: 'string', default: '5m', help: 'a failed checkpoint is tried again once this old' },
  { flag: 'max-concurrent-checkpoints', env: 'HIATUS_MAX_CONCURRENT_CHECKPOINTS', type: 'string', default: '16', help: 'container checkpoints in flight at once, all nodes' },
  { flag: 'max-checkpoints-per-node', env: 'HIATUS_MAX_CHECKPOINTS_PER_NODE', type: 'string', default: '2', help: 'container checkpoints in flight at once on one node' },
  { flag: 'webhook-port', env: 'HIATUS_WEBHOOK_PORT', type: 'string', default: '8443', help: 'HTTPS port of the restore admission webhook (/mutate-pods)' },
  { flag: 'webhook-tls-cert-file', env: 'HIATUS_WEBHOOK_TLS_CERT_FILE', type: 'string', help: 'PEM certificate of the webhook; the webhook serves only when given (with its key)' },
  { flag: 'webhook-tls-key-file', env: 'HIATUS_WEBHOOK_TLS_KEY_FILE', type: 'string', help: 'PEM private key for --webhook-tls-cert-file' },
  { flag: 'restore-timeout', env: 'HIATUS_RESTORE_TIMEOUT', type: 'string', default: '10m', help: 'a pod that claimed a checkpoint and has not run by then fails the restore' },
  { flag: 'restore-claim-grace', env: 'HIATUS_RESTORE_CLAIM_GRACE', type: 'string', default: '30s', help: 'a claim whose pod never appears is released after this' },
  { flag: 'restore-reconcile-interval', env: 'HIATUS_RESTORE_RECONCILE_INTERVAL', type: 'string', default: '5s', help: 'how often claimed checkpoints are matched with their pods' },
  {
    flag: 'restore-scheduler-names',
    env: 'HIATUS_RESTORE_SCHEDULER_NAMES',
    type: 'string',
    default: '',
    help: 'FROM=TO,...: the webhook moves restore pods of scheduler profile FROM to profile TO (scheduler-config/ ships default-scheduler=default-scheduler-restore and hiatus-scheduler=hiatus-scheduler-restore); every TO must exist in kube-scheduler\'s configuration',
  },
  {
    flag: 'restore-placement',
    env: 'HIATUS_RESTORE_PLACEMENT',
    type: 'string',
    default: 'nominate',
    help: 'nominate: a new restore pod\'s nominatedNodeName is set to its checkpoint\'s node, which kube-scheduler tries first, unless it tried the pod already; gate: the webhook also holds restore pods with the hiatus.dev/restore-placement scheduling gate until that is written (Kubernetes >= 1.30); score: neither, the node is found by scoring every node',
  },
  {
    flag: 'checkpoint-images',
    env: 'HIATUS_CHECKPOINT_IMAGES',
    type: 'string',
    default: '',
    help: 'HOST[:PORT]/PREFIX where the node agents publish checkpoint images (their HIATUS_AGENT_REGISTRY and HIATUS_AGENT_REPOSITORY_PREFIX): restore pods are given only images the agents recorded as Published under PREFIX/<namespace>, by digest. Empty: no image is given; a restore pod may restore only on its checkpoint\'s node',
  },
  {
    flag: 'publication-wait',
    env: 'HIATUS_PUBLICATION_WAIT',
    type: 'string',
    default: '3m',
    help: 'with --checkpoint-images, a restore pod whose checkpoint is still being uploaded is held (hiatus.dev/restore-placement scheduling gate: needs deploy/rbac-placement-gate.yaml) until its images are published, at most this long; then it starts fresh, with an event. 0: not held (restorable on the checkpoint\'s node only)',
  },
  { flag: 'restore-image-pull-secret', env: 'HIATUS_RESTORE_IMAGE_PULL_SECRET', type: 'string', default: '', help: 'a kubernetes.io/dockerconfigjson Secret, in each namespace, that pulls checkpoint images: added to the imagePullSecrets of restore pods given (or held for) checkpoint images' },
  { flag: 'retention-max-per-workload', env: 'HIATUS_RETENTION_MAX_PER_WORKLOAD', type: 'string', default: '3', help: 'Ready and Failed checkpoints kept per workload (owner and StatefulSet ordinal or Job completion index, else pod)' },
  { flag: 'retention-max-age', env: 'HIATUS_RETENTION_MAX_AGE', type: 'string', default: '24h', help: 'Ready and Failed checkpoints older than this are deleted and not restored' },
  { flag: 'retention-consumed-ttl', env: 'HIATUS_RETENTION_CONSUMED_TTL', type: 'string', default: '1h', help: 'Restored checkpoints are deleted this long after the restore' },
  { flag: 'retention-interval', env: 'HIATUS_RETENTION_INTERVAL', type: 'string', default: '1m', help: 'how often retention runs' },
];

export function usage(): string {
  const lines = OPTIONS.map((o) => {
    const arg = o.type === 'string' ? ' VALUE' : '';
    const def = o.default !== undefined ? ` (default ${o.default})` : '';
    return `  --${o.flag}${arg}\n      ${o.help}${def}; env ${o.env}`;
  });
  return `usage: hiatus [options]\n${lines.join('\n')}`;
}

function parseBool(name: string, v: string, problems: string[]): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off|)$/i.test(v)) return false;
  problems.push(`${name}: "${v}" is not a boolean`);
  return false;
}

function parseInteger(name: string, v: string, min: number, max: number, problems: string[]): number {
  if (!/^\d+$/.test(v.trim()) || Number(v) < min || Number(v) > max) {
    problems.push(`${name}: "${v}" must be an integer from ${min} to ${max}`);
    return min;
  }
  return Number(v);
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go-style duration with one unit ("5s", "500ms", "10m"), in milliseconds. */
export function parseDuration(v: string): number | undefined {
  const m = DURATION.exec(v.trim());
  return m ? Math.round(Number(m[1]) * UNIT_MS[m[2]!]!) : undefined;
}

/** Parses argv and env into a Config; throws ConfigError listing every problem at once. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  const options = Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: o.type }])) as Record<
    string,
    { type: 'string' | 'boolean' }
  >;
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, strict: true }).values;
  } catch (e) {
    throw new ConfigError([(e as Error).message]);
  }
  const problems: string[] = [];
  const raw = (flag: string): string | undefined => {
    const spec = OPTIONS.find((o) => o.flag === flag)!;
    const fromFlag = values[flag];
    if (fromFlag !== undefined) return String(fromFlag);
    return env[spec.env] ?? spec.default;
  };
  const bool = (flag: string) => {
    const v = raw(flag);
    return v === undefined ? false : parseBool(`--${flag}`, v, problems);
  };

  const maxBodyRaw = raw('max-body-bytes')!;
  const maxBody = parseQuantity(maxBodyRaw);
  if (maxBody === undefined || !Number.isInteger(maxBody) || maxBody < 1024) {
    problems.push(`--max-body-bytes: "${maxBodyRaw}" must be a byte size of at least 1024 (e.g. 16Mi)`);
  }
  const requestMemoryRaw = raw('max-request-memory')!;
  const requestMemory = parseQuantity(requestMemoryRaw);
  if (requestMemory === undefined || !Number.isInteger(requestMemory)) {
    problems.push(`--max-request-memory: "${requestMemoryRaw}" must be a byte size (e.g. 192Mi)`);
  } else if (maxBody !== undefined && requestMemory < minimumRequestMemory(maxBody)) {
    problems.push(`--max-request-memory: "${requestMemoryRaw}" cannot hold one body of --max-body-bytes: it must be at least 5 x --max-body-bytes`);
  }
  const logLevel = raw('log-level')!;
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    problems.push(`--log-level: "${logLevel}" must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const config = {
    port: parseInteger('--port', raw('port')!, 0, 65535, problems),
    bindAddress: raw('bind-address')!,
    zoneScore: parseInteger('--zone-score', raw('zone-score')!, 0, 10, problems),
    strict: bool('strict'),
    maxBodyBytes: maxBody ?? 0,
    maxRequestMemoryBytes: requestMemory ?? 0,
    logLevel: logLevel as LogLevel,
    noCluster: bool('no-cluster'),
  } as Config;
  const duration = (flag: string): number => {
    const v = raw(flag)!;
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0) {
      problems.push(`--${flag}: "${v}" must be a positive duration such as 5s, 500ms or 10m`);
      return 1;
    }
    return ms;
  };
  config.schedulerHttpTimeoutMs = duration('scheduler-http-timeout');
  config.preemptMarginMs = duration('preempt-margin');
  if (config.preemptMarginMs >= config.schedulerHttpTimeoutMs) {
    problems.push('--preempt-margin must be shorter than --scheduler-http-timeout: it leaves preempt no time to answer');
  }
  const wait = raw('preempt-wait')!;
  const waitMs = wait === '0' ? 0 : parseDuration(wait);
  if (waitMs === undefined || waitMs < 0) problems.push(`--preempt-wait: "${wait}" must be 0 or a duration such as 1s or 500ms`);
  config.preemptWaitMs = Math.min(waitMs ?? 0, Math.max(0, config.schedulerHttpTimeoutMs - config.preemptMarginMs));
  const policy = raw('default-checkpoint-policy')!;
  if (!CHECKPOINT_POLICIES.includes(policy as CheckpointPolicy)) {
    problems.push(`--default-checkpoint-policy: "${policy}" must be one of ${CHECKPOINT_POLICIES.join(', ')}`);
  }
  config.defaultCheckpointPolicy = policy as CheckpointPolicy;
  config.resourceRules = parseResourceRules(raw('resource-checkpointing') ?? '', problems);
  config.hostCheckpointRate = parseHostRate(raw('host-checkpoint-rate')!, problems);
  config.gpuCheckpointRates = parseGpuRates(raw('gpu-checkpoint-rates')!, problems);
  const access = raw('kubelet-access')!;
  if (access !== 'direct' && access !== 'proxy') problems.push(`--kubelet-access: "${access}" must be direct or proxy`);
  config.kubeletAccess = access as KubeletAccess;
  config.kubeletPort = parseInteger('--kubelet-port', raw('kubelet-port')!, 1, 65535, problems);
  config.kubeletInsecureTls = bool('kubelet-insecure-tls');
  const kubeletCa = raw('kubelet-ca-file');
  if (kubeletCa) config.kubeletCaFile = kubeletCa;
  config.checkpointTimeoutSeconds = Math.ceil(duration('checkpoint-timeout') / 1000);
  config.checkpointMaxAgeMs = duration('checkpoint-max-age');
  config.checkpointRetryAfterMs = duration('checkpoint-retry-after');
  config.maxConcurrentCheckpoints = parseInteger('--max-concurrent-checkpoints', raw('max-concurrent-checkpoints')!, 1, 1024, problems);
  config.maxCheckpointsPerNode = parseInteger('--max-checkpoints-per-node', raw('max-checkpoints-per-node')!, 1, 64, problems);
  config.webhookPort = parseInteger('--webhook-port', raw('webhook-port')!, 0, 65535, problems);
  /** A certificate and its key: both or neither. */
  const tlsPair = (prefix: string): { cert?: string; key?: string } => {
    const cert = raw(`${prefix}tls-cert-file`);
    const key = raw(`${prefix}tls-key-file`);
    if (Boolean(cert) !== Boolean(key)) problems.push(`--${prefix}tls-cert-file and --${prefix}tls-key-file must be given together`);
    return { ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  };
  const webhookTls = tlsPair('webhook-');
  if (webhookTls.cert) config.webhookTlsCertFile = webhookTls.cert;
  if (webhookTls.key) config.webhookTlsKeyFile = webhookTls.key;
  config.restoreTimeoutMs = duration('restore-timeout');
  config.restoreClaimGraceMs = duration('restore-claim-grace');
  config.restoreReconcileIntervalMs = duration('restore-reconcile-interval');
  config.restoreSchedulers = parseSchedulerNames(raw('restore-scheduler-names') ?? '', problems);
  const placement = raw('restore-placement')!;
  if (!RESTORE_PLACEMENTS.includes(placement as RestorePlacement)) problems.push(`--restore-placement: "${placement}" must be nominate, gate or score`);
  config.restorePlacement = placement as RestorePlacement;
  publicationConfig(config, raw, problems);
  config.retentionMaxPerWorkload = parseInteger('--retention-max-per-workload', raw('retention-max-per-workload')!, 1, 1000, problems);
  config.retentionMaxAgeMs = duration('retention-max-age');
  config.retentionConsumedTtlMs = duration('retention-consumed-ttl');
  config.retentionIntervalMs = duration('retention-interval');
  const serving = tlsPair('');
  if (serving.cert) config.tlsCertFile = serving.cert;
  if (serving.key) config.tlsKeyFile = serving.key;
  callerAuth(config, raw, bool, problems);
  const kubeconfig = raw('kubeconfig');
  if (kubeconfig) config.kubeconfig = kubeconfig;
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * Client authentication of both listeners: a CA each, or the explicit insecure choice. Client
 * certificates travel only over TLS, so a CA needs its listener's serving certificate.
 */
function callerAuth(config: Config, raw: (flag: string) => string | undefined, bool: (flag: string) => boolean, problems: string[]): void {
  config.insecureAllowUnauthenticatedCallers = bool('insecure-allow-unauthenticated-callers');
  const listener = (prefix: '' | 'webhook-', tls: boolean, served: boolean, what: string) => {
    const ca = raw(`${prefix}client-ca-file`);
    const names = parseNames(raw(`${prefix}allowed-client-names`) ?? '');
    if (ca && !tls) problems.push(`--${prefix}client-ca-file needs --${prefix}tls-cert-file and --${prefix}tls-key-file: client certificates are only sent over TLS`);
    if (names.length > 0 && !ca) problems.push(`--${prefix}allowed-client-names needs --${prefix}client-ca-file: names are read from verified client certificates`);
    if (!ca && served && !config.insecureAllowUnauthenticatedCallers) {
      problems.push(
        `--${prefix}client-ca-file is required: only ${what} with a certificate that CA signed may call this listener; to serve anyone who reaches it instead, say so with --insecure-allow-unauthenticated-callers`,
      );
    }
    return { ca, names };
  };
  const verbs = listener('', Boolean(config.tlsCertFile && config.tlsKeyFile), true, 'kube-scheduler (extender tlsConfig.certFile/keyFile)');
  if (verbs.ca) config.clientCaFile = verbs.ca;
  config.allowedClientNames = verbs.names;
  const webhookTls = Boolean(config.webhookTlsCertFile && config.webhookTlsKeyFile);
  const webhook = listener('webhook-', webhookTls, webhookTls, 'the API server (its admission configuration\'s kubeConfigFile)');
  if (webhook.ca) config.webhookClientCaFile = webhook.ca;
  config.webhookAllowedClientNames = webhook.names;
}

/** Where checkpoint images come from, and how long a restore pod waits for them. */
function publicationConfig(config: Config, raw: (flag: string) => string | undefined, problems: string[]): void {
  const images = (raw('checkpoint-images') ?? '').trim().replace(/\/+$/, '');
  if (images) {
    if (!/^[A-Za-z0-9.-]+(:\d+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(images)) {
      problems.push(`--checkpoint-images: "${images}" must be HOST[:PORT]/PREFIX, as the agents publish to (e.g. registry.example.com/hiatus)`);
    }
    config.checkpointImages = images;
  }
  const wait = raw('publication-wait')!;
  const waitMs = wait === '0' ? 0 : parseDuration(wait);
  if (waitMs === undefined || waitMs < 0) problems.push(`--publication-wait: "${wait}" must be 0 or a duration such as 3m`);
  config.publicationWaitMs = waitMs ?? 0;
  if (images && config.publicationWaitMs >= config.restoreTimeoutMs) {
    problems.push('--publication-wait must be shorter than --restore-timeout: a held pod would fail its restore before it is released');
  }
  const secret = (raw('restore-image-pull-secret') ?? '').trim();
  if (secret) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(secret)) problems.push(`--restore-image-pull-secret: "${secret}" is not a Secret name`);
    config.restoreImagePullSecret = secret;
  }
}

/** A scheduler profile name as kube-scheduler's validation accepts it (a DNS-1123 subdomain). */
const PROFILE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** `FROM=TO,FROM=TO`: each FROM once, FROM != TO, both valid profile names. */
export function parseSchedulerNames(value: string, problems: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [from, to, ...rest] = item.split('=').map((s) => s.trim());
    if (!from || !to || rest.length > 0 || !PROFILE_NAME.test(from) || !PROFILE_NAME.test(to) || from.length > 253 || to.length > 253) {
      problems.push(`--restore-scheduler-names: "${item}" must be FROM=TO, two scheduler profile names (lower-case DNS subdomains)`);
    } else if (from === to) {
      problems.push(`--restore-scheduler-names: "${item}" moves a profile to itself`);
    } else if (out.has(from)) {
      problems.push(`--restore-scheduler-names: "${from}" is listed twice`);
    } else {
      out.set(from, to);
    }
  }
  return out;
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}
