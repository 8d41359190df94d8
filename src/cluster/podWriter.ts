// The two pod writes of restore placement. Both are guarded by the pod's UID, so a same-named
// successor is never touched: the nomination is a strategic merge patch that carries it (the API
// server refuses a UID change), the gate's removal a JSON patch that tests it and the gate's
// name at its index, so that of several replicas releasing one pod exactly one succeeds.
//
// They go over one keep-alive connection pool. client-node builds a new agent, so a new TLS
// connection, for every call: in the 5,000-node scheduler benchmark that made these two
// writes cost ~11 ms of extender CPU per restore pod, and the API server its handshakes too.
import http from 'node:http';
import https from 'node:https';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { keyOf, objectKey } from '../api/keys.js';
import type { Pod } from '../api/kubernetes.js';
import { abortOptions } from './abort.js';

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

/** What preemption completion needs of a pod, read live from the API server (not the cache). */
export interface LivePod {
  uid: string;
  nodeName?: string;
  nominatedNodeName?: string;
  deleting: boolean;
}

/**
 * The writes that complete a preemption kube-scheduler started, as its own preemption executor
 * does them (pkg/scheduler/framework/preemption/executor.go, PreemptPod): a DisruptionTarget
 * condition on the victim's status, then the victim's deletion; both guarded by the victim's UID.
 */
export interface PreemptionWriter {
  /** The pod as the API server has it now; undefined when it does not exist. */
  /** The signal bounds the read: aborted, it fails. */
  getPod(namespace: string, name: string, signal?: AbortSignal): Promise<LivePod | undefined>;
  /** Sets status.nominatedNodeName (pods/status), guarded by the UID. */
  nominate(pod: PodRef, node: string): Promise<void>;
  /** Marks and deletes the pod if it is still this UID; 'gone' when it already was. */
  evict(pod: PodRef, message: string): Promise<'evicted' | 'gone'>;
}

/** One JSON patch operation (RFC 6902). */
export interface PatchOp {
  op: string;
  path: string;
  value?: unknown;
}

export interface PodPlacementWriter {
  /** Sets status.nominatedNodeName (pods/status). */
  nominate(pod: PodRef, node: string): Promise<void>;
  /**
   * Removes the scheduling gate `gate` found at `index` (pods), leaving any other in place, with
   * `also` in the same JSON patch (the restore pod's images, or its contract taken off). False
   * when it is no longer there (another replica lifted it, or the cached index is stale), or a
   * test in `also` failed.
   */
  liftGate(pod: PodRef, gate: string, index: number, also?: readonly PatchOp[]): Promise<boolean>;
}

/** A write the API server refused; `code` is the HTTP status, as client-node's ApiException has it. */
export class ApiWriteError extends Error {
  constructor(
    readonly code: number,
    what: string,
    body: string,
  ) {
    super(`${what}: HTTP ${code}: ${body.slice(0, 300)}`);
    this.name = 'ApiWriteError';
  }
}

const httpStatus = (e: unknown): number | undefined => (e as { code?: number } | null | undefined)?.code;

/** The pod no longer exists: nothing left to place. */
export function isNotFound(e: unknown): boolean {
  return httpStatus(e) === 404;
}

/**
 * The API server refused the write as such (422): a JSON patch whose test failed or whose path
 * no longer exists, or a nomination for a pod already bound (ClearingNominatedNodeNameAfterBinding).
 */
export function isUnprocessable(e: unknown): boolean {
  return httpStatus(e) === 422;
}

/** The API server's authorizer or a ValidatingAdmissionPolicy refused the write (403). */
export function isForbidden(e: unknown): boolean {
  return httpStatus(e) === 403;
}

/** A precondition on the UID failed (409): the name now belongs to another pod. */
export function isConflict(e: unknown): boolean {
  return httpStatus(e) === 409;
}

const REQUEST_TIMEOUT_MS = 10_000;
// kube-scheduler's reason (v1.PodReasonPreemptionByScheduler): PodDisruptionConditions readers
// (Job pod failure policies, kubectl) treat a hiatus eviction exactly as a scheduler preemption.
const REASON_PREEMPTION_BY_SCHEDULER = 'PreemptionByScheduler';
const disruptionBody = (pod: PodRef, message: string, now: Date) => ({
  metadata: { uid: pod.uid },
  status: {
    conditions: [
      {
        type: 'DisruptionTarget',
        status: 'True',
        reason: REASON_PREEMPTION_BY_SCHEDULER,
        message,
        lastTransitionTime: now.toISOString(),
      },
    ],
  },
});
const deleteBody = (pod: PodRef) => ({ apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: pod.uid } });
/** The pod as the API server answered a read (JSON), its fields read defensively. */
function livePod(body: unknown): LivePod {
  const raw = body as Pod | null | undefined;
  return {
    uid: raw?.metadata?.uid ?? '',
    ...(raw?.spec?.nodeName ? { nodeName: raw.spec.nodeName } : {}),
    ...(raw?.status?.nominatedNodeName ? { nominatedNodeName: raw.status.nominatedNodeName } : {}),
    deleting: Boolean(raw?.metadata?.deletionTimestamp),
  };
}
const nominateBody = (pod: PodRef, node: string) => ({
  metadata: { uid: pod.uid },
  status: { nominatedNodeName: node },
});
const liftGatePatch = (pod: PodRef, gate: string, index: number, also: readonly PatchOp[] = []) => [
  { op: 'test', path: '/metadata/uid', value: pod.uid },
  { op: 'test', path: `/spec/schedulingGates/${index}/name`, value: gate },
  ...also,
  { op: 'remove', path: `/spec/schedulingGates/${index}` },
];
const podPath = (pod: PodRef) =>
  `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}`;

// Both writers keep each API call on one line (long arguments go to locals first):
// test/deploy/rbac.test.ts derives the RBAC rules from those lines.

/** Patches over a keep-alive pool; credentials are read per call, so rotated tokens and certificates apply. */
class KeepAlivePodWriter implements PodPlacementWriter, PreemptionWriter {
  private agent: https.Agent | undefined;
  private agentKey = '';
  private readonly plainAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });

  constructor(private readonly kc: KubeConfig) {}

  async nominate(pod: PodRef, node: string): Promise<void> {
    const body = nominateBody(pod, node);
    const what = `nominate ${node} for pod ${keyOf(pod)}`;
    await this.send('PATCH', `${podPath(pod)}/status`, PatchStrategy.StrategicMergePatch, body, what);
  }

  async getPod(namespace: string, name: string, signal?: AbortSignal): Promise<LivePod | undefined> {
    try {
      const what = `read pod ${objectKey(namespace, name)}`;
      const ref = { namespace, name, uid: '' };
      return livePod(await this.send('GET', podPath(ref), undefined, undefined, what, signal));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async evict(pod: PodRef, message: string): Promise<'evicted' | 'gone'> {
    const who = `pod ${keyOf(pod)}`;
    try {
      const marked = disruptionBody(pod, message, new Date());
      const what = `mark ${who} DisruptionTarget`;
      await this.send('PATCH', `${podPath(pod)}/status`, PatchStrategy.StrategicMergePatch, marked, what);
      await this.send('DELETE', podPath(pod), 'application/json', deleteBody(pod), `delete ${who}`);
      return 'evicted';
    } catch (e) {
      // 404: deleted meanwhile; 409: the name is another pod's now; 422: the UID guard on the status patch.
      if (isNotFound(e) || isConflict(e) || isUnprocessable(e)) return 'gone';
      throw e;
    }
  }

  async liftGate(pod: PodRef, gate: string, index: number, also: readonly PatchOp[] = []): Promise<boolean> {
    try {
      const what = `lift gate ${gate} of pod ${keyOf(pod)}`;
      await this.send('PATCH', podPath(pod), PatchStrategy.JsonPatch, liftGatePatch(pod, gate, index, also), what);
      return true;
    } catch (e) {
      if (isUnprocessable(e)) return false;
      throw e;
    }
  }

  private async send(
    method: string,
    path: string,
    contentType: string | undefined,
    body: unknown,
    what: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const server = this.kc.getCurrentCluster()?.server;
    if (!server) throw new Error(`${what}: the kubeconfig has no current cluster`);
    const url = new URL(path, server);
    const options: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(options);
    if (url.protocol === 'https:') {
      const key = [options.ca, options.cert, options.key, options.rejectUnauthorized, options.servername]
        .map(String)
        .join('\0');
      if (!this.agent || key !== this.agentKey) {
        this.agent?.destroy();
        this.agent = new https.Agent({
          keepAlive: true,
          maxSockets: 8,
          ...(options.ca ? { ca: options.ca } : {}),
          ...(options.cert ? { cert: options.cert } : {}),
          ...(options.key ? { key: options.key } : {}),
          ...(options.rejectUnauthorized !== undefined ? { rejectUnauthorized: options.rejectUnauthorized } : {}),
          ...(options.servername ? { servername: options.servername } : {}),
        });
        this.agentKey = key;
      }
    }
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const client = url.protocol === 'https:' ? https : http;
    const headers: http.OutgoingHttpHeaders = {
      ...(options.headers as http.OutgoingHttpHeaders | undefined),
      Accept: 'application/json',
    };
    if (payload !== undefined) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = Buffer.byteLength(payload);
    }
    return new Promise<unknown>((resolve, reject) => {
      const req = client.request(
        url,
        {
          method,
          agent: url.protocol === 'https:' ? this.agent : this.plainAgent,
          headers,
          timeout: REQUEST_TIMEOUT_MS,
          ...(signal ? { signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            if (status < 200 || status >= 300) {
              reject(new ApiWriteError(status, what, text));
              return;
            }
            try {
              resolve(text ? JSON.parse(text) : undefined);
            } catch {
              resolve(undefined);
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${what}: no answer in ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

/** Through client-node, which honours a kubeconfig proxy-url (one connection per call). */
class ClientNodePodWriter implements PodPlacementWriter, PreemptionWriter {
  private readonly core: CoreV1Api;
  private readonly strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
  private readonly json = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async nominate(pod: PodRef, node: string): Promise<void> {
    await this.core.patchNamespacedPodStatus(
      { namespace: pod.namespace, name: pod.name, body: nominateBody(pod, node) },
      this.strategic,
    );
  }

  async getPod(namespace: string, name: string, signal?: AbortSignal): Promise<LivePod | undefined> {
    try {
      return livePod(await this.core.readNamespacedPod({ namespace, name }, abortOptions(signal)));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async evict(pod: PodRef, message: string): Promise<'evicted' | 'gone'> {
    try {
      await this.core.patchNamespacedPodStatus(
        { namespace: pod.namespace, name: pod.name, body: disruptionBody(pod, message, new Date()) },
        this.strategic,
      );
      await this.core.deleteNamespacedPod({ namespace: pod.namespace, name: pod.name, body: deleteBody(pod) });
      return 'evicted';
    } catch (e) {
      if (isNotFound(e) || isConflict(e) || isUnprocessable(e)) return 'gone';
      throw e;
    }
  }

  async liftGate(pod: PodRef, gate: string, index: number, also: readonly PatchOp[] = []): Promise<boolean> {
    try {
      const { namespace, name } = pod;
      await this.core.patchNamespacedPod({ namespace, name, body: liftGatePatch(pod, gate, index, also) }, this.json);
      return true;
    } catch (e) {
      if (isUnprocessable(e)) return false;
      throw e;
    }
  }
}

export function podPlacementWriter(kc: KubeConfig): PodPlacementWriter & PreemptionWriter {
  return kc.getCurrentCluster()?.proxyUrl ? new ClientNodePodWriter(kc) : new KeepAlivePodWriter(kc);
}
