// A stand-in for the kubelet's container checkpoint endpoint (KEP-2008), for tests, benchmarks and
// the integration harness: one instance per simulated node, each a real HTTPS server.
//
// It answers as a kubelet does, status for status and byte for byte, down to the layers a request
// crosses there (upstream kubernetes/kubernetes, go-restful v3 as vendored by it, cri-o):
//   Go's http.ServeMux       unclean path: 301 to the clean one; no handler: "404 page not found\n"
//                            (the gate-off case, before any authentication)
//   auth filter (server.go)  401 "Unauthorized"; 403 "Forbidden (user=..., verb=create, ...)"
//   go-restful CurlyRouter   "404: Page Not Found", "405: Method Not Allowed" (Allow: POST),
//                            "406: Not Acceptable..." (the route produces application/json only)
//   checkpoint() handler     404 "pod does not exist", "container <c> does not exist",
//                            "cannot parse value of timeout parameter" (last `timeout` wins)
//   Kubelet.CheckpointContainer  archive name from the start time; a container that is in the spec
//                            but not running is a 500 "container <c> not found"
//   cri-client               negative timeout rejected; deadline = timeout if it exceeds the
//                            runtime request timeout (2 min), else that default
//   runtime (CRI-O)          archive written O_RDWR|O_CREATE 0600 without truncation; a second
//                            call on a container still being checkpointed fails (it is paused)
// Error bodies are plain text without a trailing newline, except Go's own 404 page and the
// 1.32+ Forbidden message, which end in "\n"; the 200 body is the kubelet's Sprintf, unescaped.
//
// Things it does not pretend: client-certificate authentication, HTTP/2, the kubelet's local time
// zone in archive names (it writes UTC, as a node running in UTC does), and real CRIU images (the
// archive has CRI-O's layout, see archive.ts, with placeholder image bodies).
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
export type * from './types.js';
export { generateSelfSignedCert } from './certs.js';
import type { V1Container, V1EphemeralContainer, V1Pod } from '@kubernetes/client-node';
import { parseQuantity } from '../../src/cluster/quantity.js';
import { DEFAULT_COST_MODEL, gpuRate } from '../../src/scheduling/cost.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { mulberry32 } from '../random.js';
import { writeCheckpointArchive } from './archive.js';
import { generateSelfSignedCert } from './certs.js';
import {
  type Outcome,
  reply,
  restfulError,
  redirect,
  cleanPath,
  unescapePath,
  goQueryValues,
  goParseInt64,
  criDeadlineMs,
  acceptsJson,
  rfc3339,
} from './goHttp.js';
import type {
  SimContainer,
  SimPod,
  TokenIdentity,
  Failure,
  Injection,
  KubeletSimulatorOptions,
  CheckpointCall,
} from './types.js';
import { progressKey } from './progress.js';

const GiB = 2 ** 30;
const GPU_RESOURCE = 'nvidia.com/gpu';
/** The kubelet's --runtime-request-timeout default: the floor of every checkpoint deadline. */
export const DEFAULT_RUNTIME_REQUEST_TIMEOUT_MS = 120_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
const TEXT_PLAIN = 'text/plain; charset=utf-8';
const CHECKPOINT_ROOT = '/checkpoint';

interface SimulatorEvents {
  'call-start': [CheckpointCall];
  'call-end': [CheckpointCall];
}

interface InjectionRule extends Injection {
  remaining: number;
}

type Stage = 'auth' | 'runtime';
const STAGE: Record<Failure['kind'], Stage> = {
  unauthorized: 'auth',
  forbidden: 'auth',
  'pod-not-found': 'auth',
  'runtime-error': 'runtime',
  slow: 'runtime',
  hang: 'runtime',
  reset: 'runtime',
  garbage: 'runtime',
};

export class KubeletSimulator extends EventEmitter<SimulatorEvents> {
  readonly calls: CheckpointCall[] = [];
  private readonly pods = new Map<string, SimPod>();
  private readonly rules: InjectionRule[] = [];
  private readonly busy = new Set<string>();
  private readonly inFlight = new Set<AbortController>();
  private readonly random: () => number;
  private readonly now: () => Date;
  private readonly log: Logger;
  private server?: https.Server;
  private ownedDirs: string[] = [];
  private dir?: string;
  private pem?: { cert: string; key: string; certFile?: string };
  private address?: AddressInfo;
  private nextId = 1;

  constructor(private readonly opts: KubeletSimulatorOptions = {}) {
    super();
    for (const pod of opts.pods ?? []) this.setPod(pod);
    for (const inj of opts.injections ?? []) this.inject(inj);
    this.random = mulberry32(opts.seed ?? 1);
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log ?? silentLogger;
  }

  setPod(pod: SimPod): void {
    if (!pod.namespace || !pod.name || !Array.isArray(pod.containers)) {
      throw new TypeError('a simulated pod needs namespace, name and containers');
    }
    this.pods.set(podKey(pod.namespace, pod.name), pod);
  }

  /** With a uid, only that pod: a newer one of the same name (a StatefulSet's) stays. */
  removePod(namespace: string, name: string, uid?: string): boolean {
    const k = podKey(namespace, name);
    if (uid !== undefined && this.pods.get(k)?.uid !== uid) return false;
    return this.pods.delete(k);
  }

  /** Adds a failure rule; returns a function that removes it. */
  inject(injection: Injection): () => void {
    const rule: InjectionRule = { ...injection, remaining: injection.times ?? Infinity };
    this.rules.push(rule);
    return () => {
      const i = this.rules.indexOf(rule);
      if (i >= 0) this.rules.splice(i, 1);
    };
  }

  clearInjections(): void {
    this.rules.length = 0;
  }

  get port(): number {
    return this.bound().port;
  }

  get url(): string {
    const { address, port } = this.bound();
    return `https://${isIP(address) === 6 ? `[${address}]` : address}:${port}`;
  }

  /** The serving certificate, self-signed: what a client trusts as its CA. */
  get caPem(): string {
    if (!this.pem) throw new Error('kubelet simulator not started');
    return this.pem.cert;
  }

  /** Path of caPem on disk when the simulator generated it. */
  get caFile(): string | undefined {
    return this.pem?.certFile;
  }

  get archiveDir(): string {
    if (!this.dir) throw new Error('kubelet simulator not started');
    return this.dir;
  }

  /** Listens (default 127.0.0.1, any free port) and returns the bound port. */
  async start(listen: { host?: string; port?: number } = {}): Promise<number> {
    if (this.server) throw new Error('kubelet simulator already started');
    const host = listen.host ?? '127.0.0.1';
    this.dir = await this.prepareArchiveDir();
    if (this.opts.tls) {
      this.pem = this.opts.tls;
    } else {
      const tlsDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hiatus-kubelet-sim-tls-'));
      this.ownedDirs.push(tlsDir);
      this.pem = await generateSelfSignedCert([host], tlsDir);
    }
    const server = https.createServer({ cert: this.pem.cert, key: this.pem.key }, (req, res) => {
      void this.serve(req, res);
    });
    // Go's server: 90 s idle keep-alive and no limit on how long a handler may take
    // (the kubelet's ReadTimeout/WriteTimeout are 4 h); Node's default would cut hung calls at 300 s.
    server.keepAliveTimeout = 90_000;
    server.requestTimeout = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listen.port ?? 0, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      await this.removeOwnedDirs();
      throw new Error(`kubelet simulator cannot listen on ${host}:${listen.port ?? 0}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.server = server;
    this.address = server.address() as AddressInfo;
    this.log.info('kubelet simulator serving', { url: this.url, archiveDir: this.dir });
    return this.address.port;
  }

  /** Closes the server and every connection, hung calls included, and removes its temporary files. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const ctl of this.inFlight) ctl.abort('stopped');
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
    await this.removeOwnedDirs();
  }

  private async removeOwnedDirs(): Promise<void> {
    const dirs = this.ownedDirs.splice(0);
    await Promise.all(dirs.map((d) => fsp.rm(d, { recursive: true, force: true })));
  }

  private bound(): AddressInfo {
    if (!this.address) throw new Error('kubelet simulator not started');
    return this.address;
  }

  private async prepareArchiveDir(): Promise<string> {
    let dir = this.opts.archiveDir;
    if (!dir) {
      const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'hiatus-kubelet-sim-'));
      this.ownedDirs.push(root);
      dir = path.join(root, 'checkpoints');
    }
    dir = path.resolve(dir);
    // As the kubelet's setupDataDirs: MkdirAll 0700, an existing directory keeps its mode.
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const call: CheckpointCall = {
      id: this.nextId++,
      method: req.method ?? '',
      path: q < 0 ? target : target.slice(0, q),
      query: q < 0 ? '' : target.slice(q + 1),
      status: null,
      startedAt: this.now().getTime(),
    };
    this.calls.push(call);
    this.emit('call-start', call);
    const ctl = new AbortController();
    this.inFlight.add(ctl);
    res.on('close', () => {
      if (!res.writableFinished) ctl.abort('client-closed');
    });
    req.resume();
    try {
      const outcome = await this.respond(req, call, ctl.signal);
      ctl.signal.throwIfAborted();
      if ('reset' in outcome) {
        call.outcome = 'reset';
        req.socket.destroy();
      } else {
        const { status, body, headers } = outcome.reply;
        call.status = status;
        call.body = body;
        call.outcome = 'answered';
        res.writeHead(status, { ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
        res.end(body);
      }
    } catch (e) {
      if (ctl.signal.aborted) {
        call.outcome = ctl.signal.reason === 'stopped' ? 'stopped' : 'client-closed';
      } else {
        this.log.error('kubelet simulator failed a call', { path: call.path, err: String(e) });
        call.status = 500;
        call.body = String(e);
        call.outcome = 'answered';
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': TEXT_PLAIN });
        res.end(call.body);
      }
    } finally {
      this.inFlight.delete(ctl);
      call.finishedAt = this.now().getTime();
      this.log.debug('kubelet simulator call', { ...call, body: undefined });
      this.emit('call-end', call);
    }
  }

  private async respond(req: IncomingMessage, call: CheckpointCall, signal: AbortSignal): Promise<Outcome> {
    const method = req.method ?? '';
    const decoded = unescapePath(call.path);
    if (decoded === undefined) {
      return reply(400, '400 Bad Request', { 'Content-Type': TEXT_PLAIN, Connection: 'close' });
    }
    // http.ServeMux: redirect to the clean path first, then match "/checkpoint/" (when the gate registered it).
    const clean = cleanPath(call.path);
    if (clean !== call.path) return redirect(method, clean, call.query);
    if (!this.featureGateOn() || (decoded !== CHECKPOINT_ROOT && !decoded.startsWith(`${CHECKPOINT_ROOT}/`))) {
      return reply(404, '404 page not found\n', { 'Content-Type': TEXT_PLAIN, 'X-Content-Type-Options': 'nosniff' });
    }
    if (decoded === CHECKPOINT_ROOT) return redirect(method, `${CHECKPOINT_ROOT}/`, call.query);

    // go-restful runs the container filters (authentication, authorization) before it reports a routing error.
    const who = this.authenticate(req.headers.authorization);
    if (!who) return restfulError(401, 'Unauthorized');
    call.user = who.user;
    if (!who.allowed) return restfulError(403, this.forbidden(who.user, method));

    const tokens = decoded.replace(/^\/+|\/+$/g, '').split('/');
    if (tokens.length !== 4) return restfulError(404, '404: Page Not Found');
    const [, namespace = '', podName = '', container = ''] = tokens;
    call.namespace = namespace;
    call.pod = podName;
    call.container = container;
    if (method !== 'POST') return restfulError(405, '405: Method Not Allowed', { Allow: 'POST' });
    if (!acceptsJson(req.headers.accept)) {
      return restfulError(406, '406: Not Acceptable\n\nAvailable representations: application/json');
    }

    const early = this.pick('auth', namespace, podName, container);
    if (early) {
      await sleep(early.delayMs ?? 0, signal);
      switch (early.failure.kind) {
        case 'unauthorized':
          return restfulError(401, 'Unauthorized');
        case 'forbidden':
          return restfulError(403, this.forbidden(early.failure.user ?? who.user, method));
        default:
          return restfulError(404, 'pod does not exist');
      }
    }

    const pod = this.pods.get(podKey(namespace, podName)) ?? (await this.opts.podLookup?.(namespace, podName));
    if (!pod) return restfulError(404, 'pod does not exist');
    const spec = findContainer(pod, container);
    if (!spec) return restfulError(404, `container ${container} does not exist`);
    const timeouts = goQueryValues(call.query, 'timeout');
    let timeout = 0n;
    if (timeouts.length > 0) {
      const parsed = goParseInt64(timeouts[timeouts.length - 1]!);
      if (parsed === undefined) return restfulError(404, 'cannot parse value of timeout parameter');
      timeout = parsed;
    }
    return this.checkpoint(call, pod, spec, timeout, signal);
  }

  private async checkpoint(
    call: CheckpointCall,
    pod: SimPod,
    spec: ResolvedContainer,
    timeout: bigint,
    signal: AbortSignal,
  ): Promise<Outcome> {
    const { namespace, name } = pod;
    const container = spec.name;
    const failed = (why: string) =>
      restfulError(500, `checkpointing of ${namespace}/${name}/${container} failed (${why})`);
    const at = this.now();
    const location = path.join(this.archiveDir, `checkpoint-${name}_${namespace}-${container}-${rfc3339(at)}.tar`);
    if (!spec.running) return failed(`container ${container} not found`);
    if (timeout < 0n) return failed('CheckpointContainer requires the timeout value to be > 0');
    const deadlineMs = criDeadlineMs(timeout, this.opts.runtimeRequestTimeoutMs ?? DEFAULT_RUNTIME_REQUEST_TIMEOUT_MS);
    const uid = pod.uid ?? defaultUid(namespace, name);
    const containerId = sha256(`${uid}/${container}`);

    const key = `${namespace}/${name}/${container}`;
    if (this.busy.has(key)) return failed(this.pausedMessage(containerId));
    this.busy.add(key);
    const progress = progressKey(uid, container);
    const frozen = this.opts.progress?.freeze(progress, this.now().getTime());
    try {
      const injected = this.pick('runtime', namespace, name, container);
      const failure = injected?.failure;
      if (failure?.kind === 'hang') await sleep(Infinity, signal);
      let workMs = this.latencyMs(spec.memoryBytes) + this.gpuLatencyMs(spec.gpus);
      if (failure?.kind === 'slow') workMs += failure.extraMs;
      const noCudaPlugin = spec.gpus > 0 && !this.opts.gpus?.checkpoint;
      const abrupt = failure?.kind === 'runtime-error' || failure?.kind === 'reset' || noCudaPlugin;
      const eventMs = abrupt ? (injected?.delayMs ?? 0) : workMs;
      if (eventMs > deadlineMs) {
        await sleep(Math.max(0, deadlineMs), signal);
        return failed('rpc error: code = DeadlineExceeded desc = context deadline exceeded');
      }
      await sleep(eventMs, signal);
      if (failure?.kind === 'runtime-error') return failed(failure.message ?? criuDumpError(containerId));
      if (noCudaPlugin) return failed(criuDumpError(containerId));
      if (failure?.kind === 'reset') return { reset: true };
      try {
        await writeCheckpointArchive(location, {
          namespace,
          pod: name,
          podUid: uid,
          container,
          containerId,
          checkpointedAt: at,
          ...(frozen !== undefined ? { progress: frozen } : {}),
          ...(spec.pagesBytes !== undefined ? { pagesBytes: spec.pagesBytes } : {}),
        });
      } catch (e) {
        return failed(
          `rpc error: code = Unknown desc = failed to write file system changes of container ${containerId}: ` +
            `error creating checkpoint export file "${location}": ${(e as Error).message}`,
        );
      }
      call.archivePath = location;
      if (failure?.kind === 'garbage') {
        return reply(200, failure.body ?? '{"items":["', { 'Content-Type': 'application/json' });
      }
      // The kubelet formats this with Sprintf, no JSON escaping: reproduced as is.
      return reply(200, `{"items":["${location}"]}`, { 'Content-Type': 'application/json' });
    } finally {
      this.busy.delete(key);
      this.opts.progress?.thaw(progress, this.now().getTime());
    }
  }

  private featureGateOn(): boolean {
    return this.opts.featureGate ?? true;
  }

  /** The kubelet's bearer-token authenticator: undefined means 401. */
  private authenticate(header: string | undefined): TokenIdentity | undefined {
    const tokens = this.opts.tokens;
    if (!tokens) return { user: 'system:anonymous', allowed: true };
    const auth = (header ?? '').trim();
    const parts = auth.split(' ');
    if (auth === '' || parts.length < 2 || parts[0]!.toLowerCase() !== 'bearer' || parts[1] === '') {
      return this.opts.anonymousAuth ? { user: 'system:anonymous', allowed: false } : undefined;
    }
    // A token that is present but unknown fails authentication even with anonymous auth on.
    return Object.hasOwn(tokens, parts[1]!) ? tokens[parts[1]!] : undefined;
  }

  private forbidden(user: string, method: string): string {
    const verb = HTTP_VERBS[method] ?? '';
    return this.opts.forbiddenMessage === 'pre-1.32'
      ? `Forbidden (user=${user}, verb=${verb}, resource=nodes, subresource=checkpoint)`
      : `Forbidden (user=${user}, verb=${verb}, resource=nodes, subresource(s)=[checkpoint])\n`;
  }

  private pausedMessage(containerId: string): string {
    // CRI-O refuses a container that is not in the running state (the first call paused it);
    // containerd's shim says the text checkpoint-restore-operator matches as transient.
    return this.opts.runtime === 'containerd'
      ? 'rpc error: code = Unknown desc = cannot pause a paused container'
      : `rpc error: code = Unknown desc = container ${containerId} is not running`;
  }

  private latencyMs(memoryBytes: number): number {
    const { baseMs = 0, msPerGiB = 0, scale = 1 } = this.opts.latency ?? {};
    return (baseMs + (msPerGiB * memoryBytes) / GiB) * scale;
  }

  /** GPU memory to host, as the cost model estimates it (its rate for the product unless given). */
  private gpuLatencyMs(gpus: number): number {
    const g = this.opts.gpus;
    if (gpus === 0 || !g) return 0;
    const rate = g.bytesPerSecond ?? gpuRate(g.product, DEFAULT_COST_MODEL) ?? 0;
    if (!(rate > 0)) return 0;
    return (DEFAULT_COST_MODEL.gpuBaseMs + ((gpus * g.memoryBytes) / rate) * 1000) * (this.opts.latency?.scale ?? 1);
  }

  private pick(stage: Stage, namespace: string, pod: string, container: string): InjectionRule | undefined {
    for (const rule of this.rules) {
      if (STAGE[rule.failure.kind] !== stage || rule.remaining <= 0) continue;
      if (rule.namespace !== undefined && rule.namespace !== namespace) continue;
      if (rule.pod !== undefined && rule.pod !== pod) continue;
      if (rule.container !== undefined && rule.container !== container) continue;
      const p = rule.probability ?? 1;
      if (p < 1 && !(this.random() < p)) continue;
      rule.remaining -= 1;
      return rule;
    }
    return undefined;
  }
}

/** Builds a simulated pod from a Kubernetes Pod: memory from limits (else requests), running from status when present. */
export function simPodFromV1Pod(pod: V1Pod): SimPod {
  const statuses = new Map<string, boolean>();
  const status = pod.status;
  const all = [
    ...(status?.containerStatuses ?? []),
    ...(status?.initContainerStatuses ?? []),
    ...(status?.ephemeralContainerStatuses ?? []),
  ];
  for (const s of all) statuses.set(s.name, s.state?.running !== undefined);
  const known = (status?.containerStatuses?.length ?? 0) > 0;
  const convert = (c: V1Container | V1EphemeralContainer, runningByDefault: boolean): SimContainer => {
    const gpus = parseQuantity(c.resources?.limits?.[GPU_RESOURCE] ?? c.resources?.requests?.[GPU_RESOURCE]) ?? 0;
    return {
      name: c.name,
      memoryBytes: parseQuantity(c.resources?.limits?.memory ?? c.resources?.requests?.memory) ?? 0,
      running: known ? (statuses.get(c.name) ?? false) : runningByDefault,
      ...(gpus > 0 ? { gpus } : {}),
    };
  };
  return {
    namespace: pod.metadata?.namespace ?? 'default',
    name: pod.metadata?.name ?? '',
    ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}),
    containers: (pod.spec?.containers ?? []).map((c) => convert(c, true)),
    initContainers: (pod.spec?.initContainers ?? []).map((c) => convert(c, c.restartPolicy === 'Always')),
    ephemeralContainers: (pod.spec?.ephemeralContainers ?? []).map((c) => convert(c, true)),
  };
}

interface ResolvedContainer {
  name: string;
  memoryBytes: number;
  gpus: number;
  pagesBytes?: number;
  running: boolean;
}

function findContainer(pod: SimPod, name: string): ResolvedContainer | undefined {
  const groups: [SimContainer[] | undefined, boolean][] = [
    [pod.containers, true],
    [pod.initContainers, false],
    [pod.ephemeralContainers, true],
  ];
  for (const [list, runningByDefault] of groups) {
    const c = list?.find((x) => x.name === name);
    if (c) {
      return {
        name: c.name,
        memoryBytes: c.memoryBytes ?? 0,
        gpus: c.gpus ?? 0,
        running: c.running ?? runningByDefault,
        ...(c.pagesBytes !== undefined ? { pagesBytes: c.pagesBytes } : {}),
      };
    }
  }
  return undefined;
}

const HTTP_VERBS: Record<string, string> = {
  POST: 'create',
  GET: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

function podKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function defaultUid(namespace: string, name: string): string {
  const h = sha256(`pod:${namespace}/${name}`);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function criuDumpError(containerId: string): string {
  // CRI-O's wrapping around runc's report of a failed CRIU dump, as for a container holding a device.
  return `rpc error: code = Unknown desc = failed to checkpoint container ${containerId}: criu failed: type DUMP errno 0`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    // The simulator aborts with a string, which the call's handler reads back from the signal.
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- rejects with the signal's own reason
    const abort = () => reject(signal.reason);
    if (signal.aborted) return abort();
    const timer = Number.isFinite(ms) ? setTimeout(done, Math.min(Math.max(0, ms), MAX_TIMER_MS)) : undefined;
    function done() {
      signal.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      abort();
    }
    signal.addEventListener('abort', aborted, { once: true });
  });
}
