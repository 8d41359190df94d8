// What `npm run bench -- [options]` measures and for how long.
import { parseArgs } from 'node:util';

export interface Settings {
  /** Cluster sizes for the NodeNames (nodeCacheCapable: true) scenarios. */
  sizes: number[];
  /** Cluster sizes for the full Nodes (nodeCacheCapable: false) scenarios. */
  fullSizes: number[];
  /** Concurrent keep-alive connections. */
  clients: number[];
  /** Measured requests per cell, and the time bound on them. */
  requests: number;
  seconds: number;
  warmupRequests: number;
  warmupSeconds: number;
  /** Paired extender/bare rounds for the headline ratio, and the time bound of each. */
  rounds: number;
  roundSeconds: number;
  /** Scenario keys to run; empty = all. */
  only: string[];
  /** Directory for the extender's V8 CPU profile (node --cpu-prof), if any. */
  profileDir?: string;
}

export const USAGE = `usage: npm run bench -- [options]
  --sizes 100,1000,5000     node counts, NodeNames scenarios
  --full-sizes 100,1000     node counts, full Nodes scenarios
  --clients 1,4,16          concurrent keep-alive connections
  --requests 2000           measured requests per cell (after warm-up)
  --seconds 1.5             at most this long per cell
  --warmup 200              warm-up requests per cell
  --warmup-seconds 0.5      at most this long of warm-up per cell
  --rounds 8                paired extender/bare rounds for the headline ratio
  --round-seconds 1         at most this long per headline measurement
  --only KEY,...            run only these scenarios (keys listed in the output)
  --profile DIR             write the extender's CPU profile (node --cpu-prof) to DIR`;

function numbers(flag: string, v: string): number[] {
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new Error(`--${flag}: "${v}" must be a comma-separated list of positive integers`);
  }
  return list;
}

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag}: "${v}" must be a positive number`);
  return n;
}

export function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      sizes: { type: 'string', default: '100,1000,5000' },
      'full-sizes': { type: 'string', default: '100,1000' },
      clients: { type: 'string', default: '1,4,16' },
      requests: { type: 'string', default: '2000' },
      seconds: { type: 'string', default: '1.5' },
      warmup: { type: 'string', default: '200' },
      'warmup-seconds': { type: 'string', default: '0.5' },
      rounds: { type: 'string', default: '8' },
      'round-seconds': { type: 'string', default: '1' },
      only: { type: 'string', default: '' },
      profile: { type: 'string' },
    },
  });
  const settings: Settings = {
    sizes: numbers('sizes', values.sizes),
    fullSizes: numbers('full-sizes', values['full-sizes']),
    clients: numbers('clients', values.clients),
    requests: Math.round(positive('requests', values.requests)),
    seconds: positive('seconds', values.seconds),
    warmupRequests: Math.round(positive('warmup', values.warmup)),
    warmupSeconds: positive('warmup-seconds', values['warmup-seconds']),
    rounds: Math.round(positive('rounds', values.rounds)),
    roundSeconds: positive('round-seconds', values['round-seconds']),
    only: values.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
  if (values.profile) settings.profileDir = values.profile;
  return settings;
}
