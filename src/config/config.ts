// Configuration from flags and environment (flags win), validated once at start.
import { parseArgs } from 'node:util';
import { parseQuantity } from '../cluster/quantity.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';

export interface Config {
  port: number;
  bindAddress: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** prioritize score for a node in the checkpoint's zone (the holder gets 10). */
  zoneScore: number;
  /** Reject nodes whose compatibility facts are unknown. */
  strict: boolean;
  maxBodyBytes: number;
  logLevel: LogLevel;
  noCluster: boolean;
  kubeconfig?: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

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
  { flag: 'zone-score', env: 'HIATUS_ZONE_SCORE', type: 'string', default: '5', help: 'score 0..10 for nodes in the checkpoint\'s zone' },
  { flag: 'strict', env: 'HIATUS_STRICT', type: 'boolean', help: 'reject nodes whose architecture, CPU features or runtime are unknown' },
  { flag: 'max-body-bytes', env: 'HIATUS_MAX_BODY_BYTES', type: 'string', default: '50Mi', help: 'largest request body accepted (e.g. 50Mi)' },
  { flag: 'log-level', env: 'HIATUS_LOG_LEVEL', type: 'string', default: 'info', help: 'debug, info, warn or error' },
  { flag: 'no-cluster', env: 'HIATUS_NO_CLUSTER', type: 'boolean', help: 'run without a Kubernetes API: judge from requests alone' },
  { flag: 'kubeconfig', env: 'HIATUS_KUBECONFIG', type: 'string', help: 'kubeconfig path (default: in-cluster, $KUBECONFIG, ~/.kube/config)' },
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
    problems.push(`--max-body-bytes: "${maxBodyRaw}" must be a byte size of at least 1024 (e.g. 50Mi)`);
  }
  const logLevel = raw('log-level')!;
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    problems.push(`--log-level: "${logLevel}" must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const config: Config = {
    port: parseInteger('--port', raw('port')!, 0, 65535, problems),
    bindAddress: raw('bind-address')!,
    zoneScore: parseInteger('--zone-score', raw('zone-score')!, 0, 10, problems),
    strict: bool('strict'),
    maxBodyBytes: maxBody ?? 0,
    logLevel: logLevel as LogLevel,
    noCluster: bool('no-cluster'),
  };
  const cert = raw('tls-cert-file');
  const key = raw('tls-key-file');
  if (Boolean(cert) !== Boolean(key)) problems.push('--tls-cert-file and --tls-key-file must be given together');
  if (cert) config.tlsCertFile = cert;
  if (key) config.tlsKeyFile = key;
  const kubeconfig = raw('kubeconfig');
  if (kubeconfig) config.kubeconfig = kubeconfig;
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}
