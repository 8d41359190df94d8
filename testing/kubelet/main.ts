// CLI: one simulated kubelet checkpoint endpoint, for a harness in another process or a manual run.
// Prints one JSON line {"url","host","port","caFile","archiveDir"} on stdout once it listens.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import { createLogger, LOG_LEVELS, type LogLevel } from '../../src/log.js';
import {
  KubeletSimulator,
  simPodFromV1Pod,
  type Injection,
  type KubeletSimulatorOptions,
  type SimPod,
  type TokenIdentity,
} from './kubelet.js';

const USAGE = `usage: kubelet-simulator [options]
  --host ADDR                       address to listen on (default 127.0.0.1; any 127.0.0.x works)
  --port N                          port, 0 for any free one (default 10250)
  --archive-dir DIR                 checkpoints directory (default: a temporary one, removed on exit)
  --latency-base-ms MS              time every checkpoint takes (default 0)
  --latency-ms-per-gib MS           added time per GiB of the container's memory (default 0)
  --latency-scale X                 multiplies the latency; 0 makes checkpoints instant (default 1)
  --runtime-request-timeout-ms MS   CRI deadline that ?timeout= can only raise (default 120000)
  --pods FILE                       JSON array of pods: {namespace,name,containers:[{name,memoryBytes}]} or Kubernetes Pods
  --tokens FILE                     JSON {"<token>":{"user":"...","allowed":true}}: require bearer tokens
  --inject JSON                     failure injection, repeatable, e.g. '{"container":"gpu","failure":{"kind":"runtime-error"}}'
  --seed N                          seed for probabilistic injections (default 1)
  --feature-gate-off                behave as a kubelet with ContainerCheckpoint disabled
  --tls-cert-file FILE --tls-key-file FILE   serving certificate (default: self-signed, generated)
  --log-level LEVEL                 debug, info, warn or error (default info)`;

function number(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new Error(`--${flag} needs a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}

function readJson(flag: string, file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--${flag} ${file}: ${(e as Error).message}`, { cause: e });
  }
}

function toSimPod(item: unknown): SimPod {
  const o = item as Partial<SimPod> & Partial<V1Pod>;
  return o.metadata ? simPodFromV1Pod(o) : (o as SimPod);
}

interface Parsed {
  options: KubeletSimulatorOptions;
  host: string;
  port: number;
  logLevel: LogLevel;
  certFile?: string;
}

function parse(argv: string[]): Parsed {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'archive-dir': { type: 'string' },
      'latency-base-ms': { type: 'string' },
      'latency-ms-per-gib': { type: 'string' },
      'latency-scale': { type: 'string' },
      'runtime-request-timeout-ms': { type: 'string' },
      pods: { type: 'string' },
      tokens: { type: 'string' },
      inject: { type: 'string', multiple: true },
      seed: { type: 'string' },
      'feature-gate-off': { type: 'boolean' },
      'tls-cert-file': { type: 'string' },
      'tls-key-file': { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  if (!values['tls-cert-file'] !== !values['tls-key-file'])
    throw new Error('--tls-cert-file and --tls-key-file go together');
  const pods = values.pods ? readJson('pods', values.pods) : [];
  if (!Array.isArray(pods)) throw new Error('--pods must hold a JSON array');
  const options: KubeletSimulatorOptions = {
    pods: pods.map(toSimPod),
    latency: {
      baseMs: number('latency-base-ms', values['latency-base-ms']) ?? 0,
      msPerGiB: number('latency-ms-per-gib', values['latency-ms-per-gib']) ?? 0,
      scale: number('latency-scale', values['latency-scale']) ?? 1,
    },
    runtimeRequestTimeoutMs: number('runtime-request-timeout-ms', values['runtime-request-timeout-ms']),
    featureGate: !values['feature-gate-off'],
    injections: (values.inject ?? []).map((j) => {
      try {
        return JSON.parse(j) as Injection;
      } catch (e) {
        throw new Error(`--inject ${j}: ${(e as Error).message}`, { cause: e });
      }
    }),
    seed: number('seed', values.seed),
  };
  if (values['archive-dir']) options.archiveDir = values['archive-dir'];
  if (values.tokens) options.tokens = readJson('tokens', values.tokens) as Record<string, TokenIdentity>;
  if (values['tls-cert-file'] && values['tls-key-file']) {
    options.tls = {
      cert: readFileSync(values['tls-cert-file'], 'utf8'),
      key: readFileSync(values['tls-key-file'], 'utf8'),
    };
  }
  return {
    options,
    host: values.host ?? '127.0.0.1',
    port: number('port', values.port) ?? 10250,
    logLevel,
    ...(values['tls-cert-file'] ? { certFile: values['tls-cert-file'] } : {}),
  };
}

async function main(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let parsed: Parsed;
  try {
    parsed = parse(argv);
  } catch (e) {
    process.stderr.write(`kubelet-simulator: ${(e as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  const log = createLogger(parsed.logLevel);
  const sim = new KubeletSimulator({ ...parsed.options, log });
  const port = await sim.start({ host: parsed.host, port: parsed.port });
  process.stdout.write(
    `${JSON.stringify({ url: sim.url, host: parsed.host, port, caFile: sim.caFile ?? parsed.certFile ?? null, archiveDir: sim.archiveDir })}\n`,
  );
  const shutdown = (signal: string) => {
    log.info('kubelet simulator stopping', { signal });
    void sim.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`kubelet-simulator: ${(e as Error).message}\n`);
  process.exit(1);
});
