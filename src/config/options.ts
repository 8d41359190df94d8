// The extender's options: one entry per Config field with its flag, environment variable, default
// (raw text, parsed like any other value) and parser. loadConfig (config.ts) reads them in a loop
// and `--help` is written from them.
import { LOG_LEVELS } from '../log.js';
import { parseNames } from '../server/auth.js';
import { DEFAULT_HOST_RATE, MEASURED_GPU_RATES, parseGpuRates, parseHostRate } from '../scheduling/cost.js';
import { parseResourceRules } from '../scheduling/resources.js';
import { CHECKPOINT_POLICIES } from '../scheduling/victimPolicy.js';
import type { Config, KubeletAccess, RestorePlacement } from './config.js';
import {
  bool,
  bytes,
  collecting,
  duration,
  durationOrZero,
  int,
  invalid,
  map,
  oneOf,
  path,
  text,
  valid,
  valueParser,
  type Parser,
} from './parsers.js';

export interface Option<T> {
  flag: string;
  env: string;
  /** Parsed when neither the flag nor the environment gives a value; without one, "" is. */
  default?: string;
  parser: Parser<T>;
  help: string;
}

/** Every Config field has exactly one option, whose parser yields that field's type. */
export type OptionTable = { [K in keyof Config]-?: Option<Config[K]> };

const KUBELET_ACCESS: readonly KubeletAccess[] = ['direct', 'proxy'];
const RESTORE_PLACEMENTS: readonly RestorePlacement[] = ['nominate', 'gate', 'score'];

/** A DNS-1123 subdomain: what Kubernetes accepts as a Secret name and kube-scheduler as a profile name. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** "a, b ,c" -> ["a", "b", "c"]. */
const names: Parser<string[]> = map(text, parseNames);

/** `FROM=TO,FROM=TO`: each FROM once, FROM != TO, both valid profile names. */
function parseSchedulerNames(value: string, problems: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [from, to, ...rest] = item.split('=').map((s) => s.trim());
    if (
      !from ||
      !to ||
      rest.length > 0 ||
      !DNS_SUBDOMAIN.test(from) ||
      !DNS_SUBDOMAIN.test(to) ||
      from.length > 253 ||
      to.length > 253
    ) {
      problems.push(
        `--restore-scheduler-names: "${item}" must be FROM=TO, two scheduler profile names (lower-case DNS subdomains)`,
      );
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

/** HOST[:PORT]/PREFIX as the node agents publish to, trailing slashes dropped; empty: none. */
const imagePrefix: Parser<string | undefined> = valueParser((raw, flag) => {
  const images = raw.trim().replace(/\/+$/, '');
  if (!images) return valid(undefined);
  return /^[A-Za-z0-9.-]+(:\d+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(images)
    ? valid(images)
    : invalid(flag, images, 'must be HOST[:PORT]/PREFIX, as the agents publish to (e.g. registry.example.com/hiatus)');
});

/** The name of a Secret, trimmed; empty: none. */
const secretName: Parser<string | undefined> = valueParser((raw, flag) => {
  const secret = raw.trim();
  if (!secret) return valid(undefined);
  return DNS_SUBDOMAIN.test(secret) ? valid(secret) : invalid(flag, secret, 'is not a Secret name');
});

/** In the order `--help` lists them and loadConfig reports their problems. */
export const OPTIONS: OptionTable = {
  port: {
    flag: 'port',
    env: 'HIATUS_PORT',
    default: '8888',
    parser: int(0, 65535),
    help: 'port to serve the extender API on',
  },
  bindAddress: {
    flag: 'bind-address',
    env: 'HIATUS_BIND_ADDRESS',
    default: '0.0.0.0',
    parser: text,
    help: 'address to listen on',
  },
  tlsCertFile: {
    flag: 'tls-cert-file',
    env: 'HIATUS_TLS_CERT_FILE',
    parser: path,
    help: 'PEM certificate: serve HTTPS (with --tls-key-file)',
  },
  tlsKeyFile: {
    flag: 'tls-key-file',
    env: 'HIATUS_TLS_KEY_FILE',
    parser: path,
    help: 'PEM private key for --tls-cert-file',
  },
  clientCaFile: {
    flag: 'client-ca-file',
    env: 'HIATUS_CLIENT_CA_FILE',
    parser: path,
    help: "PEM CA bundle: only clients with a certificate it signed (kube-scheduler's tlsConfig.certFile/keyFile) may call filter, prioritize, preempt and /metrics; needs --tls-cert-file",
  },
  allowedClientNames: {
    flag: 'allowed-client-names',
    env: 'HIATUS_ALLOWED_CLIENT_NAMES',
    default: '',
    parser: names,
    help: "comma-separated: a verb caller's certificate must carry one of these as CN or DNS subjectAltName (empty: any certificate --client-ca-file signed); /metrics takes any",
  },
  webhookClientCaFile: {
    flag: 'webhook-client-ca-file',
    env: 'HIATUS_WEBHOOK_CLIENT_CA_FILE',
    parser: path,
    help: 'PEM CA bundle: only clients with a certificate it signed (the API server, through its admission configuration) may call the restore webhook',
  },
  webhookAllowedClientNames: {
    flag: 'webhook-allowed-client-names',
    env: 'HIATUS_WEBHOOK_ALLOWED_CLIENT_NAMES',
    default: '',
    parser: names,
    help: "comma-separated: the webhook caller's certificate must carry one of these as CN or DNS subjectAltName (empty: any certificate --webhook-client-ca-file signed)",
  },
  insecureAllowUnauthenticatedCallers: {
    flag: 'insecure-allow-unauthenticated-callers',
    env: 'HIATUS_INSECURE_ALLOW_UNAUTHENTICATED_CALLERS',
    parser: bool,
    help: 'serve a listener that has no client CA to anyone who reaches it (anyone could then drive preemption and checkpoint any pod): for local trials only',
  },
  zoneScore: {
    flag: 'zone-score',
    env: 'HIATUS_ZONE_SCORE',
    default: '5',
    parser: int(0, 10),
    help: "score 0..10 for nodes in the checkpoint's zone",
  },
  strict: {
    flag: 'strict',
    env: 'HIATUS_STRICT',
    parser: bool,
    help: 'reject nodes whose architecture, CPU features or runtime are unknown',
  },
  maxBodyBytes: {
    flag: 'max-body-bytes',
    env: 'HIATUS_MAX_BODY_BYTES',
    default: '16Mi',
    parser: bytes('16Mi', 1024),
    help: 'largest request body accepted (e.g. 16Mi)',
  },
  maxRequestMemoryBytes: {
    flag: 'max-request-memory',
    env: 'HIATUS_MAX_REQUEST_MEMORY',
    default: '192Mi',
    parser: bytes('192Mi'),
    help: 'estimated memory all request bodies being served at once may take (about 5-9 bytes per body byte); beyond it requests get 503; at least 5 x --max-body-bytes',
  },
  logLevel: {
    flag: 'log-level',
    env: 'HIATUS_LOG_LEVEL',
    default: 'info',
    parser: oneOf(LOG_LEVELS),
    help: 'debug, info, warn or error',
  },
  noCluster: {
    flag: 'no-cluster',
    env: 'HIATUS_NO_CLUSTER',
    parser: bool,
    help: 'run without a Kubernetes API: judge from requests alone',
  },
  kubeconfig: {
    flag: 'kubeconfig',
    env: 'HIATUS_KUBECONFIG',
    parser: path,
    help: 'kubeconfig path (default: in-cluster, $KUBECONFIG, ~/.kube/config)',
  },
  schedulerHttpTimeoutMs: {
    flag: 'scheduler-http-timeout',
    env: 'HIATUS_SCHEDULER_HTTP_TIMEOUT',
    default: '5s',
    parser: duration,
    help: 'the httpTimeout of this extender in the KubeSchedulerConfiguration',
  },
  preemptMarginMs: {
    flag: 'preempt-margin',
    env: 'HIATUS_PREEMPT_MARGIN',
    default: '1s',
    parser: duration,
    help: "preempt answers this long before the scheduler's httpTimeout",
  },
  preemptWaitMs: {
    flag: 'preempt-wait',
    env: 'HIATUS_PREEMPT_WAIT',
    default: '0',
    parser: durationOrZero('1s or 500ms'),
    help: "longest preempt holds kube-scheduler's scheduling cycle (every pod waits meanwhile) for its victims' checkpoints; slower ones finish in the background and hiatus then evicts the victims itself; 0 never waits; capped by --scheduler-http-timeout minus --preempt-margin",
  },
  defaultCheckpointPolicy: {
    flag: 'default-checkpoint-policy',
    env: 'HIATUS_DEFAULT_CHECKPOINT_POLICY',
    default: 'Never',
    parser: oneOf(CHECKPOINT_POLICIES),
    help: 'policy for victims whose pod and PriorityClass say none: Required, BestEffort or Never',
  },
  resourceRules: {
    flag: 'resource-checkpointing',
    env: 'HIATUS_RESOURCE_CHECKPOINTING',
    default: '',
    parser: collecting(parseResourceRules),
    help: 'NAME=MODE,...: whether a victim holding extended resource NAME (or a prefix ending in *) can be checkpointed: checkpointable, not-checkpointable, or cuda (an NVIDIA GPU: on GPU-checkpoint capable nodes only); the most specific name wins, over a built-in list; names nothing matches are not-checkpointable',
  },
  hostCheckpointRate: {
    flag: 'host-checkpoint-rate',
    env: 'HIATUS_HOST_CHECKPOINT_RATE',
    default: DEFAULT_HOST_RATE,
    parser: collecting(parseHostRate),
    help: "host memory a checkpoint writes per second, end to end (e.g. 128Mi): estimates each victim's checkpoint time, a tie-breaker among candidates",
  },
  gpuCheckpointRates: {
    flag: 'gpu-checkpoint-rates',
    env: 'HIATUS_GPU_CHECKPOINT_RATES',
    default: MEASURED_GPU_RATES,
    parser: collecting(parseGpuRates),
    help: 'PRODUCT=RATE,...: GPU memory the NVIDIA driver copies to host per second while checkpointing, by nvidia.com/gpu.product (* for any other); the default is measured on an H200 (benchmarks/gpu/checkpoint-rates.py measures yours)',
  },
  kubeletAccess: {
    flag: 'kubelet-access',
    env: 'HIATUS_KUBELET_ACCESS',
    default: 'direct',
    parser: oneOf(KUBELET_ACCESS),
    help: 'direct (node:10250, needs nodes/checkpoint) or proxy (through the API server, needs nodes/proxy)',
  },
  kubeletPort: {
    flag: 'kubelet-port',
    env: 'HIATUS_KUBELET_PORT',
    default: '10250',
    parser: int(1, 65535),
    help: 'kubelet port when the Node does not publish one',
  },
  kubeletCaFile: {
    flag: 'kubelet-ca-file',
    env: 'HIATUS_KUBELET_CA_FILE',
    parser: path,
    help: 'CA bundle that signs kubelet serving certificates (direct access)',
  },
  kubeletInsecureTls: {
    flag: 'kubelet-insecure-tls',
    env: 'HIATUS_KUBELET_INSECURE_TLS',
    parser: bool,
    help: 'do not verify kubelet serving certificates (direct access)',
  },
  checkpointTimeoutSeconds: {
    flag: 'checkpoint-timeout',
    env: 'HIATUS_CHECKPOINT_TIMEOUT',
    default: '5m',
    parser: map(duration, (ms) => Math.ceil(ms / 1000)),
    help: 'longest a container checkpoint may take (sent to the kubelet as ?timeout=)',
  },
  checkpointMaxAgeMs: {
    flag: 'checkpoint-max-age',
    env: 'HIATUS_CHECKPOINT_MAX_AGE',
    default: '10m',
    parser: duration,
    help: 'a Ready checkpoint older than this is taken again before eviction',
  },
  checkpointRetryAfterMs: {
    flag: 'checkpoint-retry-after',
    env: 'HIATUS_CHECKPOINT_RETRY_AFTER',
    default: '5m',
    parser: duration,
    help: 'a failed checkpoint is tried again once this old',
  },
  maxConcurrentCheckpoints: {
    flag: 'max-concurrent-checkpoints',
    env: 'HIATUS_MAX_CONCURRENT_CHECKPOINTS',
    default: '16',
    parser: int(1, 1024),
    help: 'container checkpoints in flight at once, all nodes',
  },
  maxCheckpointsPerNode: {
    flag: 'max-checkpoints-per-node',
    env: 'HIATUS_MAX_CHECKPOINTS_PER_NODE',
    default: '2',
    parser: int(1, 64),
    help: 'container checkpoints in flight at once on one node',
  },
  webhookPort: {
    flag: 'webhook-port',
    env: 'HIATUS_WEBHOOK_PORT',
    default: '8443',
    parser: int(0, 65535),
    help: 'HTTPS port of the restore admission webhook (/mutate-pods)',
  },
  webhookTlsCertFile: {
    flag: 'webhook-tls-cert-file',
    env: 'HIATUS_WEBHOOK_TLS_CERT_FILE',
    parser: path,
    help: 'PEM certificate of the webhook; the webhook serves only when given (with its key)',
  },
  webhookTlsKeyFile: {
    flag: 'webhook-tls-key-file',
    env: 'HIATUS_WEBHOOK_TLS_KEY_FILE',
    parser: path,
    help: 'PEM private key for --webhook-tls-cert-file',
  },
  restoreTimeoutMs: {
    flag: 'restore-timeout',
    env: 'HIATUS_RESTORE_TIMEOUT',
    default: '10m',
    parser: duration,
    help: 'a pod that claimed a checkpoint and has not run by then fails the restore',
  },
  restoreClaimGraceMs: {
    flag: 'restore-claim-grace',
    env: 'HIATUS_RESTORE_CLAIM_GRACE',
    default: '90s',
    parser: duration,
    help: 'a claim whose pod never appears is released after this (at least 65s: until then its pod may still be created)',
  },
  restoreReconcileIntervalMs: {
    flag: 'restore-reconcile-interval',
    env: 'HIATUS_RESTORE_RECONCILE_INTERVAL',
    default: '5s',
    parser: duration,
    help: 'how often claimed checkpoints are matched with their pods',
  },
  restoreSchedulers: {
    flag: 'restore-scheduler-names',
    env: 'HIATUS_RESTORE_SCHEDULER_NAMES',
    default: '',
    parser: collecting(parseSchedulerNames),
    help: "FROM=TO,...: the webhook moves restore pods of scheduler profile FROM to profile TO (scheduler-config/ ships default-scheduler=default-scheduler-restore and hiatus-scheduler=hiatus-scheduler-restore); every TO must exist in kube-scheduler's configuration",
  },
  restorePlacement: {
    flag: 'restore-placement',
    env: 'HIATUS_RESTORE_PLACEMENT',
    default: 'nominate',
    parser: oneOf(RESTORE_PLACEMENTS),
    help: "nominate: a new restore pod's nominatedNodeName is set to its checkpoint's node, which kube-scheduler tries first, unless it tried the pod already; gate: the webhook also holds restore pods with the hiatus.dev/restore-placement scheduling gate until that is written (Kubernetes >= 1.30); score: neither, the node is found by scoring every node",
  },
  checkpointImages: {
    flag: 'checkpoint-images',
    env: 'HIATUS_CHECKPOINT_IMAGES',
    default: '',
    parser: imagePrefix,
    help: "HOST[:PORT]/PREFIX where the node agents publish checkpoint images (their HIATUS_AGENT_REGISTRY and HIATUS_AGENT_REPOSITORY_PREFIX): restore pods are given only images the agents recorded as Published under PREFIX/<namespace>, by digest. Empty: no image is given; a restore pod may restore only on its checkpoint's node",
  },
  publicationWaitMs: {
    flag: 'publication-wait',
    env: 'HIATUS_PUBLICATION_WAIT',
    default: '3m',
    parser: durationOrZero('3m'),
    help: "with --checkpoint-images, a restore pod whose checkpoint is still being uploaded is held (hiatus.dev/restore-placement scheduling gate: needs deploy/rbac-placement-gate.yaml) until its images are published, at most this long; then it starts fresh, with an event. 0: not held (restorable on the checkpoint's node only)",
  },
  restoreImagePullSecret: {
    flag: 'restore-image-pull-secret',
    env: 'HIATUS_RESTORE_IMAGE_PULL_SECRET',
    default: '',
    parser: secretName,
    help: 'a kubernetes.io/dockerconfigjson Secret, in each namespace, that pulls checkpoint images: added to the imagePullSecrets of restore pods given (or held for) checkpoint images',
  },
  retentionMaxPerWorkload: {
    flag: 'retention-max-per-workload',
    env: 'HIATUS_RETENTION_MAX_PER_WORKLOAD',
    default: '3',
    parser: int(1, 1000),
    help: 'Ready and Failed checkpoints kept per workload (owner and StatefulSet ordinal or Job completion index, else pod)',
  },
  retentionMaxAgeMs: {
    flag: 'retention-max-age',
    env: 'HIATUS_RETENTION_MAX_AGE',
    default: '24h',
    parser: duration,
    help: 'Ready and Failed checkpoints older than this are deleted and not restored',
  },
  retentionConsumedTtlMs: {
    flag: 'retention-consumed-ttl',
    env: 'HIATUS_RETENTION_CONSUMED_TTL',
    default: '1h',
    parser: duration,
    help: 'Restored checkpoints are deleted this long after the restore',
  },
  retentionIntervalMs: {
    flag: 'retention-interval',
    env: 'HIATUS_RETENTION_INTERVAL',
    default: '1m',
    parser: duration,
    help: 'how often retention runs',
  },
};

export function usage(): string {
  const lines = Object.values(OPTIONS).map((o: Option<unknown>) => {
    const arg = o.parser.kind === 'value' ? ' VALUE' : '';
    const def = o.default !== undefined ? ` (default ${o.default})` : '';
    return `  --${o.flag}${arg}\n      ${o.help}${def}; env ${o.env}`;
  });
  return `usage: hiatus [options]\n${lines.join('\n')}`;
}
