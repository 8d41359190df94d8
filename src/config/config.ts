// Configuration from flags and environment (flags win): each option parsed by its entry in the
// option table (options.ts), then the options that constrain each other validated together.
import { parseArgs } from 'node:util';
import type { LogLevel } from '../log.js';
import { RECLAIM_AFTER_MS } from '../restore/webhook.js';
import { minimumRequestMemory } from '../server/body.js';
import type { ResourceRule } from '../scheduling/resources.js';
import type { CheckpointPolicy } from '../scheduling/victimPolicy.js';
import { OPTIONS, type Option } from './options.js';

export { parseDuration } from './parsers.js';

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

/** Parses argv and env into a Config; throws ConfigError listing every problem at once. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  const given = parseFlags(argv);
  const problems: string[] = [];
  const config: Partial<Config> = {};
  const raw: RawValues = {};
  for (const key of Object.keys(OPTIONS) as (keyof Config)[]) {
    raw[key] = readOption(key, OPTIONS[key], given, env, config, problems);
  }
  problems.push(...crossFieldProblems(config, raw));
  if (problems.length > 0) throw new ConfigError(problems);
  // Every field of Config has an option (OptionTable says so) and every option parsed: complete.
  const complete = config as Config;
  // preempt never holds kube-scheduler's cycle longer than it may answer in.
  complete.preemptWaitMs = Math.min(complete.preemptWaitMs, complete.schedulerHttpTimeoutMs - complete.preemptMarginMs);
  return complete;
}

function parseFlags(argv: string[]): Record<string, string | boolean | undefined> {
  const options = Object.fromEntries(
    Object.values(OPTIONS).map((o: Option<unknown>) => [
      o.flag,
      { type: o.parser.kind === 'switch' ? 'boolean' : 'string' } as const,
    ]),
  );
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, strict: true }).values;
  } catch (e) {
    throw new ConfigError([(e as Error).message]);
  }
}

/** Each option's text as given (or defaulted), for problems that quote it. */
type RawValues = Partial<Record<keyof Config, string>>;

/** The flag's value, else the environment's, else the default, else "": parsed into config[key], and returned. */
function readOption<K extends keyof Config>(
  key: K,
  option: Option<Config[K]>,
  given: Record<string, string | boolean | undefined>,
  env: NodeJS.ProcessEnv,
  config: Partial<Config>,
  problems: string[],
): string {
  const flagValue = given[option.flag];
  const raw = flagValue !== undefined ? String(flagValue) : (env[option.env] ?? option.default ?? '');
  const parsed = option.parser.parse(raw, option.flag);
  if (!parsed.ok) problems.push(...parsed.problems);
  else if (parsed.value !== undefined) config[key] = parsed.value;
  return raw;
}

/**
 * Options that constrain each other. A check whose options did not parse is skipped: their own
 * problems are reported already.
 */
function crossFieldProblems(c: Partial<Config>, raw: RawValues): string[] {
  const problems: string[] = [];
  if (
    c.maxBodyBytes !== undefined &&
    c.maxRequestMemoryBytes !== undefined &&
    c.maxRequestMemoryBytes < minimumRequestMemory(c.maxBodyBytes)
  ) {
    problems.push(
      `--max-request-memory: "${raw.maxRequestMemoryBytes}" cannot hold one body of --max-body-bytes: it must be at least 5 x --max-body-bytes`,
    );
  }
  if (
    c.preemptMarginMs !== undefined &&
    c.schedulerHttpTimeoutMs !== undefined &&
    c.preemptMarginMs >= c.schedulerHttpTimeoutMs
  ) {
    problems.push(
      '--preempt-margin must be shorter than --scheduler-http-timeout: it leaves preempt no time to answer',
    );
  }
  if (
    c.checkpointImages &&
    c.publicationWaitMs !== undefined &&
    c.restoreTimeoutMs !== undefined &&
    c.publicationWaitMs >= c.restoreTimeoutMs
  ) {
    problems.push(
      '--publication-wait must be shorter than --restore-timeout: a held pod would fail its restore before it is released',
    );
  }
  if (c.restoreClaimGraceMs !== undefined && c.restoreClaimGraceMs < RECLAIM_AFTER_MS) {
    problems.push(
      `--restore-claim-grace must be at least ${RECLAIM_AFTER_MS / 1000}s: a pod admitted with the claim may still be created until then, and a claim released sooner could restore a second pod from the same checkpoint`,
    );
  }
  for (const prefix of ['', 'webhook-'] as const) {
    const { cert, key } =
      prefix === ''
        ? { cert: c.tlsCertFile, key: c.tlsKeyFile }
        : { cert: c.webhookTlsCertFile, key: c.webhookTlsKeyFile };
    if (Boolean(cert) !== Boolean(key))
      problems.push(`--${prefix}tls-cert-file and --${prefix}tls-key-file must be given together`);
  }
  problems.push(...callerAuthProblems(c));
  return problems;
}

/**
 * Client authentication of both listeners: a CA each, or the explicit insecure choice. Client
 * certificates travel only over TLS, so a CA needs its listener's serving certificate.
 */
function callerAuthProblems(c: Partial<Config>): string[] {
  const problems: string[] = [];
  const listener = (
    prefix: '' | 'webhook-',
    ca: string | undefined,
    names: string[] | undefined,
    tls: boolean,
    served: boolean,
    what: string,
  ) => {
    if (ca && !tls)
      problems.push(
        `--${prefix}client-ca-file needs --${prefix}tls-cert-file and --${prefix}tls-key-file: client certificates are only sent over TLS`,
      );
    if (names && names.length > 0 && !ca)
      problems.push(
        `--${prefix}allowed-client-names needs --${prefix}client-ca-file: names are read from verified client certificates`,
      );
    if (!ca && served && !c.insecureAllowUnauthenticatedCallers) {
      problems.push(
        `--${prefix}client-ca-file is required: only ${what} with a certificate that CA signed may call this listener; to serve anyone who reaches it instead, say so with --insecure-allow-unauthenticated-callers`,
      );
    }
  };
  const verbsTls = Boolean(c.tlsCertFile && c.tlsKeyFile);
  listener(
    '',
    c.clientCaFile,
    c.allowedClientNames,
    verbsTls,
    true,
    'kube-scheduler (extender tlsConfig.certFile/keyFile)',
  );
  const webhookTls = Boolean(c.webhookTlsCertFile && c.webhookTlsKeyFile);
  listener(
    'webhook-',
    c.webhookClientCaFile,
    c.webhookAllowedClientNames,
    webhookTls,
    webhookTls,
    "the API server (its admission configuration's kubeConfigFile)",
  );
  return problems;
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}
