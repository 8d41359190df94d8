// The API calls kubectl hiatus makes, each named as RBAC names it, so that a failure becomes one
// line saying which verb on which resource went wrong (errors.ts). The user's own credentials.
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type CoreV1Event,
  type V1Node,
  type V1Pod,
  type V1Scale,
} from '@kubernetes/client-node';
import { CHECKPOINT_GROUP, CHECKPOINT_PLURAL, CHECKPOINT_VERSION, type Checkpoint } from '../api/checkpoint.js';
import type { EventInfo } from './checkpoints.js';
import { CliError, describeFailure, type ApiOp } from './errors.js';
import type { Target } from './kubeconfig.js';
import type { Workload } from './restore.js';
import { objectKey } from '../api/keys.js';

const CHECKPOINTS = `${CHECKPOINT_PLURAL}.${CHECKPOINT_GROUP}`;
type ScaleKind = Workload['kind'];
const SCALE_RESOURCE: Record<ScaleKind, string> = {
  Deployment: 'deployments.apps/scale',
  ReplicaSet: 'replicasets.apps/scale',
  StatefulSet: 'statefulsets.apps/scale',
};

/** Why an API call failed, kept for callers that carry on without it (events, nodes). */
export class ApiCallError extends CliError {}

function isNotFound(e: unknown): boolean {
  return e instanceof ApiException && e.code === 404;
}

function toTime(t: Date | string | undefined | null): string | undefined {
  if (!t) return undefined;
  const d = t instanceof Date ? t : new Date(t);
  return Number.isFinite(d.getTime()) ? d.toISOString() : undefined;
}

export function eventInfo(e: CoreV1Event): EventInfo {
  const info: EventInfo = {
    type: e.type ?? '',
    reason: e.reason ?? '',
    message: (e.message ?? '').trim(),
    pod: e.involvedObject.name ?? '',
  };
  const time = toTime(e.lastTimestamp) ?? toTime(e.eventTime) ?? toTime(e.firstTimestamp);
  if (time) info.time = time;
  if (e.involvedObject.uid) info.podUID = e.involvedObject.uid;
  if (e.count) info.count = e.count;
  return info;
}

export class Cluster {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(readonly target: Target) {
    this.core = target.kc.makeApiClient(CoreV1Api);
    this.apps = target.kc.makeApiClient(AppsV1Api);
    this.custom = target.kc.makeApiClient(CustomObjectsApi);
  }

  private async call<T>(op: ApiOp, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw new ApiCallError(describeFailure(op, e, this.target.connection));
    }
  }

  /** The object, or undefined when the API server says it does not exist. */
  private async find<T>(op: ApiOp, fn: () => Promise<T>): Promise<T | undefined> {
    return this.call(op, async () => {
      try {
        return await fn();
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
    });
  }

  private params(namespace: string) {
    return { group: CHECKPOINT_GROUP, version: CHECKPOINT_VERSION, plural: CHECKPOINT_PLURAL, namespace };
  }

  async checkpoints(namespace: string | undefined): Promise<Checkpoint[]> {
    const op: ApiOp = { verb: 'list', resource: CHECKPOINTS, ...(namespace ? { namespace } : {}) };
    const list = (await this.call(op, () =>
      namespace
        ? this.custom.listNamespacedCustomObject(this.params(namespace))
        : this.custom.listCustomObjectForAllNamespaces({
            group: CHECKPOINT_GROUP,
            version: CHECKPOINT_VERSION,
            plural: CHECKPOINT_PLURAL,
          }),
    )) as { items: Checkpoint[] };
    return list.items;
  }

  /** The Checkpoint; a one-line error when it does not exist. */
  async checkpoint(namespace: string, name: string): Promise<Checkpoint> {
    const op: ApiOp = { verb: 'get', resource: CHECKPOINTS, namespace, name };
    return (await this.call(op, () =>
      this.custom.getNamespacedCustomObject({ ...this.params(namespace), name }),
    )) as Checkpoint;
  }

  async createCheckpoint(body: Checkpoint): Promise<Checkpoint> {
    const op: ApiOp = { verb: 'create', resource: CHECKPOINTS, namespace: body.metadata.namespace };
    return (await this.call(op, () =>
      this.custom.createNamespacedCustomObject({ ...this.params(body.metadata.namespace), body }),
    )) as Checkpoint;
  }

  /** Deletes a record unchanged since it was read; false when it changed (or was gone). */
  async deleteUnchanged(c: Checkpoint): Promise<boolean> {
    const { namespace, name, uid, resourceVersion } = c.metadata;
    const op: ApiOp = { verb: 'delete', resource: CHECKPOINTS, namespace, name };
    try {
      await this.custom.deleteNamespacedCustomObject({
        ...this.params(namespace),
        name,
        body: { preconditions: { uid, resourceVersion } },
      });
      return true;
    } catch (e) {
      if (e instanceof ApiException && (e.code === 409 || e.code === 404)) return false;
      throw new ApiCallError(describeFailure(op, e, this.target.connection));
    }
  }

  /** The pod; a one-line error when it does not exist. */
  pod(namespace: string, name: string): Promise<V1Pod> {
    return this.call({ verb: 'get', resource: 'pods', namespace, name }, () =>
      this.core.readNamespacedPod({ namespace, name }),
    );
  }

  findPod(namespace: string, name: string): Promise<V1Pod | undefined> {
    return this.find({ verb: 'get', resource: 'pods', namespace, name }, () =>
      this.core.readNamespacedPod({ namespace, name }),
    );
  }

  createPod(body: V1Pod, dryRun: boolean): Promise<V1Pod> {
    const namespace = body.metadata!.namespace!;
    return this.call({ verb: 'create', resource: 'pods', namespace }, () =>
      this.core.createNamespacedPod({ namespace, body, ...(dryRun ? { dryRun: 'All' } : {}) }),
    );
  }

  async deletePod(namespace: string, name: string): Promise<void> {
    await this.call({ verb: 'delete', resource: 'pods', namespace, name }, () =>
      this.core.deleteNamespacedPod({ namespace, name }),
    );
  }

  /** Events of the pods with these names, oldest first. */
  async podEvents(namespace: string, pods: readonly string[]): Promise<EventInfo[]> {
    const out: EventInfo[] = [];
    for (const pod of new Set(pods)) {
      const list = await this.call({ verb: 'list', resource: 'events', namespace }, () =>
        this.core.listNamespacedEvent({
          namespace,
          fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod}`,
        }),
      );
      out.push(...list.items.map(eventInfo));
    }
    return out.sort((a, b) => Date.parse(a.time ?? '') - Date.parse(b.time ?? ''));
  }

  node(name: string): Promise<V1Node> {
    return this.call({ verb: 'get', resource: 'nodes', name, clusterScoped: true }, () => this.core.readNode({ name }));
  }

  async nodes(): Promise<V1Node[]> {
    return (await this.call({ verb: 'list', resource: 'nodes', clusterScoped: true }, () => this.core.listNode()))
      .items;
  }

  async replicaSet(namespace: string, name: string): Promise<{ workload: Workload; deployment?: string } | undefined> {
    const rs = await this.find({ verb: 'get', resource: 'replicasets.apps', namespace, name }, () =>
      this.apps.readNamespacedReplicaSet({ namespace, name }),
    );
    if (!rs) return undefined;
    const workload: Workload = {
      kind: 'ReplicaSet',
      name,
      uid: rs.metadata?.uid ?? '',
      replicas: rs.spec?.replicas ?? 1,
    };
    const hash =
      rs.metadata?.labels?.['pod-template-hash'] ?? rs.spec?.template?.metadata?.labels?.['pod-template-hash'];
    if (hash) workload.templateHash = hash;
    const revision = rs.metadata?.annotations?.['deployment.kubernetes.io/revision'];
    if (revision) workload.revision = revision;
    if (rs.spec?.template) workload.template = rs.spec.template;
    const d = rs.metadata?.ownerReferences?.find((o) => o.controller && o.kind === 'Deployment');
    return d ? { workload, deployment: d.name } : { workload };
  }

  async deployment(namespace: string, name: string): Promise<Workload | undefined> {
    const d = await this.find({ verb: 'get', resource: 'deployments.apps', namespace, name }, () =>
      this.apps.readNamespacedDeployment({ namespace, name }),
    );
    if (!d) return undefined;
    const workload: Workload = {
      kind: 'Deployment',
      name,
      uid: d.metadata?.uid ?? '',
      replicas: d.spec?.replicas ?? 1,
    };
    const revision = d.metadata?.annotations?.['deployment.kubernetes.io/revision'];
    if (revision) workload.revision = revision;
    return workload;
  }

  async statefulSet(namespace: string, name: string): Promise<Workload | undefined> {
    const s = await this.find({ verb: 'get', resource: 'statefulsets.apps', namespace, name }, () =>
      this.apps.readNamespacedStatefulSet({ namespace, name }),
    );
    if (!s) return undefined;
    const workload: Workload = {
      kind: 'StatefulSet',
      name,
      uid: s.metadata?.uid ?? '',
      replicas: s.spec?.replicas ?? 1,
    };
    if (s.status?.updateRevision) workload.templateHash = s.status.updateRevision;
    if (s.spec?.template) workload.template = s.spec.template;
    return workload;
  }

  /** Sets a workload's replicas through its scale subresource (read, then update on its resourceVersion). */
  async scale(namespace: string, w: Workload, replicas: number): Promise<void> {
    const name = w.name;
    const read = { verb: 'get', resource: SCALE_RESOURCE[w.kind], namespace, name } as const;
    const write = { verb: 'update', resource: SCALE_RESOURCE[w.kind], namespace, name } as const;
    const apps = this.apps;
    const ops: Record<ScaleKind, { get: () => Promise<V1Scale>; put: (body: V1Scale) => Promise<V1Scale> }> = {
      Deployment: {
        get: () => apps.readNamespacedDeploymentScale({ namespace, name }),
        put: (body) => apps.replaceNamespacedDeploymentScale({ namespace, name, body }),
      },
      ReplicaSet: {
        get: () => apps.readNamespacedReplicaSetScale({ namespace, name }),
        put: (body) => apps.replaceNamespacedReplicaSetScale({ namespace, name, body }),
      },
      StatefulSet: {
        get: () => apps.readNamespacedStatefulSetScale({ namespace, name }),
        put: (body) => apps.replaceNamespacedStatefulSetScale({ namespace, name, body }),
      },
    };
    const scale = await this.call(read, ops[w.kind].get);
    if ((scale.spec?.replicas ?? 0) !== w.replicas) {
      throw new CliError(
        `${w.kind} ${objectKey(namespace, name)} was scaled meanwhile (${w.replicas} -> ${scale.spec?.replicas ?? 0} replicas): run the command again`,
      );
    }
    scale.spec = { ...scale.spec, replicas };
    await this.call(write, () => ops[w.kind].put(scale));
  }
}
