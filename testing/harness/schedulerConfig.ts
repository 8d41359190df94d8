// KubeSchedulerConfiguration for the e2e kube-scheduler, generated from the shipped files under
// scheduler-config/: their profiles and extender stay as they are, except what a loopback test
// cluster needs (the extender's address and certificate files, our kubeconfig, no leader
// election) and the knobs a scenario varies (applied to every extender entry alike).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';

export type SchedulerConfigBase = 'second-scheduler' | 'default-scheduler';

export interface ExtenderOverrides {
  nodeCacheCapable?: boolean;
  ignorable?: boolean;
  /** Go duration, e.g. "5s". */
  httpTimeout?: string;
}

export interface SchedulerConfigOptions extends ExtenderOverrides {
  base: SchedulerConfigBase;
  /**
   * Replaces the plain profile's schedulerName (and its restore twin's, `<name>-restore`), so
   * that several instances can share one cluster.
   */
  schedulerName?: string;
  /** null: the same configuration without any extender (a baseline to compare with). */
  extenderUrl: string | null;
  /**
   * For an https extenderUrl: the files of the shipped tlsConfig (the CA that signed the
   * extender's serving certificate, kube-scheduler's client certificate and key). An http
   * extenderUrl (a benchmark's) gets no TLS.
   */
  extenderClient?: { caFile: string; certFile: string; keyFile: string };
  kubeconfig: string;
  /**
   * The plain profile's percentageOfNodesToScore; null drops it (kube-scheduler's adaptive
   * default). The restore profile keeps its own (100).
   */
  percentageOfNodesToScore?: number | null;
  /**
   * Drops managedResources, so that kube-scheduler calls filter and prioritize for every pod
   * (what an extender without them costs; a benchmark yardstick).
   */
  everyPod?: boolean;
  /** clientConnection qps and burst; kube-scheduler's defaults (50, 100) when absent. */
  clientRate?: { qps: number; burst: number };
}

type Obj = Record<string, unknown>;

export function repoRoot(): string {
  // test/e2e/harness under jest, dist/test/e2e/harness when compiled (the demo): the first
  // directory up with a package.json is the repository.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('repository root not found above the e2e harness');
    dir = up;
  }
  return dir;
}

/**
 * The extender entries of a shipped configuration: one extender, listed once for filter and
 * prioritize (restore pods only, managedResources) and once for preempt (every pod).
 */
export function shippedExtenders(base: SchedulerConfigBase): Obj[] {
  return extendersOf(shipped(base), base);
}

function shipped(base: SchedulerConfigBase): Obj {
  return load(readFileSync(path.join(repoRoot(), 'scheduler-config', `${base}.yaml`), 'utf8')) as Obj;
}

function extendersOf(doc: Obj, base: SchedulerConfigBase): Obj[] {
  const extenders = doc.extenders as Obj[] | undefined;
  if (!extenders || extenders.length === 0) throw new Error(`scheduler-config/${base}.yaml: no extenders`);
  const timeouts = new Set(extenders.map((e) => e.httpTimeout));
  if (timeouts.size !== 1)
    throw new Error(`scheduler-config/${base}.yaml: the extender entries disagree on httpTimeout`);
  return extenders;
}

/** The httpTimeout the shipped entries share (the extender's preempt budget is derived from it). */
export function shippedHttpTimeout(base: SchedulerConfigBase): string {
  // A Go duration ("5s"): YAML reads it as a string.
  return (shippedExtenders(base)[0]!.httpTimeout as string | undefined) ?? '5s';
}

/**
 * The shipped tlsConfig with this cluster's files: it must present a client certificate (the
 * extender refuses callers without one). serverName goes: the loopback URL names the address
 * the serving certificate is for.
 */
function clientTlsConfig(
  file: string,
  shipped: Obj | undefined,
  files: { caFile: string; certFile: string; keyFile: string },
): Obj {
  const missing = ['caFile', 'certFile', 'keyFile'].filter((k) => !shipped?.[k]);
  if (missing.length > 0) throw new Error(`${file}: the extender's tlsConfig has no ${missing.join(', ')}`);
  const { serverName: _name, ...rest } = shipped!;
  return { ...rest, ...files };
}

/** The configuration as JSON (which kube-scheduler reads as YAML). */
export function schedulerConfig(opts: SchedulerConfigOptions): string {
  const file = `scheduler-config/${opts.base}.yaml`;
  const doc = shipped(opts.base);
  const extenders = extendersOf(doc, opts.base);
  // The shipped files have a plain profile and its "-restore" twin (every node scored).
  const profiles = (doc.profiles as Obj[] | undefined) ?? [];
  const [plain, restore] = profiles;
  if (profiles.length !== 2 || !plain || restore?.schedulerName !== `${String(plain.schedulerName)}-restore`) {
    throw new Error(`${file}: expected a profile and its -restore twin`);
  }
  const name = opts.schedulerName ?? String(plain.schedulerName);
  const plainProfile: Obj = { ...plain, schedulerName: name };
  if (opts.percentageOfNodesToScore === null) delete plainProfile.percentageOfNodesToScore;
  else if (opts.percentageOfNodesToScore !== undefined)
    plainProfile.percentageOfNodesToScore = opts.percentageOfNodesToScore;
  const { extenders: _shipped, ...rest } = doc;
  const config: Obj = {
    ...rest,
    clientConnection: { kubeconfig: opts.kubeconfig, ...(opts.clientRate ?? {}) },
    leaderElection: { leaderElect: false },
    profiles: [plainProfile, { ...restore, schedulerName: `${name}-restore` }],
  };
  if (opts.extenderUrl === null) {
    // No extender, so no managedResources: keep what ignoredByScheduler did, or no node fits a
    // pod requesting the restore marker (a baseline must schedule the same pods).
    const ignored = extenders
      .flatMap((e) => (e.managedResources as { name: string; ignoredByScheduler?: boolean }[] | undefined) ?? [])
      .filter((r) => r.ignoredByScheduler)
      .map((r) => r.name);
    if (ignored.length > 0) {
      config.profiles = (config.profiles as Obj[]).map((p) => ({
        ...p,
        pluginConfig: [{ name: 'NodeResourcesFit', args: { ignoredResources: ignored } }],
      }));
    }
  }
  if (opts.extenderUrl !== null) {
    const url = opts.extenderUrl;
    const https = url.startsWith('https:');
    if (https && !opts.extenderClient)
      throw new Error(`${url}: an https extender needs extenderClient (the CA and kube-scheduler's certificate)`);
    config.extenders = extenders.map(({ tlsConfig, managedResources, ...extender }) => ({
      ...extender,
      ...(managedResources !== undefined && !opts.everyPod ? { managedResources } : {}),
      urlPrefix: url,
      enableHTTPS: https,
      ...(https ? { tlsConfig: clientTlsConfig(file, tlsConfig as Obj | undefined, opts.extenderClient!) } : {}),
      ...(opts.nodeCacheCapable !== undefined ? { nodeCacheCapable: opts.nodeCacheCapable } : {}),
      ...(opts.ignorable !== undefined ? { ignorable: opts.ignorable } : {}),
      ...(opts.httpTimeout !== undefined ? { httpTimeout: opts.httpTimeout } : {}),
    }));
  }
  return JSON.stringify(config, null, 2);
}
