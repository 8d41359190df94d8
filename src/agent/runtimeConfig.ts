// Whether the node's container runtime restores containers from checkpoints, read from the
// runtime's effective configuration. CRI-O serves it as TOML at GET /config on its socket (cri-o
// server/inspect.go InspectConfigEndpoint, the Config's ToBytes; `crio status config` reads the
// same): [crio.checkpoint_restore] container_level_enabled = "none" | "checkpoint_only" |
// "checkpoint_restore" (pkg/config/config.go CheckpointRestoreConfig; only checkpoint_restore
// restores, RestoreContainerEnabled), or, before that table existed, [crio.runtime]
// enable_criu_support = true | false. The verdict becomes a Node label that filter reads.
import { existsSync } from 'node:fs';
import http from 'node:http';

export { LABEL_RUNTIME_RESTORE } from '../api/keys.js';

/**
 * enabled: restores. checkpoint_only, none: [crio.checkpoint_restore] container_level_enabled
 * forbids it; criu_disabled: [crio.runtime] enable_criu_support = false (older CRI-O).
 */
export type RuntimeRestore = 'enabled' | 'checkpoint_only' | 'none' | 'criu_disabled';

export interface RestoreVerdict {
  value: RuntimeRestore;
  /** The setting that decided it, as it appears in the configuration. */
  setting: string;
}

/** The string or boolean values of a TOML document, by "table.key" (enough for CRI-O's flat tables). */
export function tomlValues(text: string): Map<string, string | boolean> {
  const out = new Map<string, string | boolean>();
  let table = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/.exec(line);
    if (header) {
      table = header[1]!.replace(/\s*\.\s*/g, '.').replace(/"/g, '');
      continue;
    }
    const kv = /^([A-Za-z0-9_.-]+|"[^"]*")\s*=\s*(.*)$/.exec(line);
    if (!kv) continue;
    const key = kv[1]!.replace(/"/g, '');
    const value = kv[2]!.trim();
    const s = /^"((?:[^"\\]|\\.)*)"/.exec(value) ?? /^'([^']*)'/.exec(value);
    if (s) out.set(`${table}.${key}`, s[1]!);
    else if (/^(true|false)\b/.test(value)) out.set(`${table}.${key}`, value.startsWith('true'));
  }
  return out;
}

/** CRI-O's verdict from its /config TOML; undefined when the document says neither setting. */
export function crioRestoreVerdict(toml: string): RestoreVerdict | undefined {
  const v = tomlValues(toml);
  const level = v.get('crio.checkpoint_restore.container_level_enabled');
  if (typeof level === 'string') {
    const setting = `[crio.checkpoint_restore] container_level_enabled = "${level}"`;
    if (level === 'checkpoint_restore') return { value: 'enabled', setting };
    if (level === 'checkpoint_only' || level === 'none') return { value: level, setting };
    return undefined;
  }
  const criu = v.get('crio.runtime.enable_criu_support');
  if (typeof criu === 'boolean') {
    const setting = `[crio.runtime] enable_criu_support = ${criu}`;
    return criu ? { value: 'enabled', setting } : { value: 'criu_disabled', setting };
  }
  return undefined;
}

/**
 * What the agent found on its node: CRI-O answering (its verdict; undefined when its configuration
 * names neither setting), or no CRI-O socket. Failing to ask (a timeout, an error answer) throws.
 */
export type RuntimeReading = { runtime: 'crio'; verdict: RestoreVerdict | undefined } | { runtime: 'absent' };

/** Reads CRI-O's restore setting from its socket. */
export async function readCrio(socketPath: string): Promise<RuntimeReading> {
  if (!existsSync(socketPath)) return { runtime: 'absent' };
  return { runtime: 'crio', verdict: crioRestoreVerdict(await fetchCrioConfig(socketPath)) };
}

/** GET /config over CRI-O's socket (default /var/run/crio/crio.sock), as crio status config does. */
export function fetchCrioConfig(socketPath: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: '/config', method: 'GET', headers: { Host: 'crio' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`CRI-O ${socketPath} /config answered ${res.statusCode}: ${body.slice(0, 200)}`));
      });
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`CRI-O ${socketPath} /config: no answer in ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end();
  });
}
