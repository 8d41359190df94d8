// Where Checkpoint records live: the API server (durable, shared by every replica).
import { ApiException, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import {
  CHECKPOINT_GROUP,
  CHECKPOINT_PLURAL,
  CHECKPOINT_VERSION,
  LABEL_SOURCE_POD_UID,
  type Checkpoint,
} from '../api/checkpoint.js';
import { keyOf, objectKey } from '../api/keys.js';
import { abortOptions } from '../cluster/abort.js';

/** Another writer got there first (409): the caller lost the claim or must re-read. */
export class StoreConflict extends Error {
  constructor(what: string) {
    super(`checkpoint ${what}: conflict`);
    this.name = 'StoreConflict';
  }
}

/**
 * The object is not there (404): deleted under the caller (kubectl delete, its namespace going).
 * An update never creates a Checkpoint: the API server answers 404 to a PUT of a missing custom
 * resource (apiextensions-apiserver customresource strategy: AllowCreateOnUpdate is false).
 */
export class StoreNotFound extends Error {
  constructor(what: string) {
    super(`checkpoint ${what}: not found`);
    this.name = 'StoreNotFound';
  }
}

/** The store could not be reached or refused the write for another reason. */
export class StoreUnavailable extends Error {
  constructor(what: string, cause: string) {
    super(`checkpoint ${what}: ${cause}`);
    this.name = 'StoreUnavailable';
  }
}

/** What a caller may bound a call with: aborted, it fails (StoreUnavailable), whether or not the API server acted on it. */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface CheckpointStore {
  get(namespace: string, name: string, opts?: CallOptions): Promise<Checkpoint | undefined>;
  /**
   * Every record of one pod (label hiatus.dev/source-pod-uid), read from the API server's latest
   * state, not a watch cache that may lag: what the executor's per-pod lock decides by.
   */
  listForPod(namespace: string, podUid: string): Promise<Checkpoint[]>;
  /** Creation is the lock: StoreConflict when the name exists. */
  create(obj: Checkpoint): Promise<Checkpoint>;
  /** Optimistic update on metadata.resourceVersion: StoreConflict when it changed, StoreNotFound when it is gone. */
  replace(obj: Checkpoint, opts?: CallOptions): Promise<Checkpoint>;
  /**
   * Deletes if still at this uid (and, when given, this resourceVersion: unchanged since it was
   * judged); false when it was already gone, StoreConflict when it changed.
   */
  delete(namespace: string, name: string, uid?: string, resourceVersion?: string): Promise<boolean>;
}

function mapError(what: string, e: unknown): Error {
  if (e instanceof ApiException) {
    if (e.code === 409) return new StoreConflict(what);
    if (e.code === 404) return new StoreNotFound(what);
    return new StoreUnavailable(what, `API server answered ${e.code}`);
  }
  return new StoreUnavailable(what, (e as Error | undefined)?.message ?? String(e));
}

export class ApiCheckpointStore implements CheckpointStore {
  private readonly api: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.api = kc.makeApiClient(CustomObjectsApi);
  }

  private params(namespace: string, name?: string) {
    return {
      group: CHECKPOINT_GROUP,
      version: CHECKPOINT_VERSION,
      namespace,
      plural: CHECKPOINT_PLURAL,
      ...(name ? { name } : {}),
    };
  }

  async get(namespace: string, name: string, opts: CallOptions = {}): Promise<Checkpoint | undefined> {
    try {
      const call = abortOptions(opts.signal);
      return (await this.api.getNamespacedCustomObject({ ...this.params(namespace), name }, call)) as Checkpoint;
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return undefined;
      throw mapError(objectKey(namespace, name), e);
    }
  }

  /**
   * A LIST without resourceVersion is a quorum read (k8s.io/apiserver pkg/storage/cacher/delegator:
   * ShouldDelegateList sends ResourceVersionQuorum to ShouldDelegateConsistentRead): served from
   * etcd, or from the API server's cache only once it caught up with etcd's current revision
   * (ConsistentListFromCache). Either way it holds every write committed before the call.
   */
  async listForPod(namespace: string, podUid: string): Promise<Checkpoint[]> {
    try {
      const list = (await this.api.listNamespacedCustomObject({
        ...this.params(namespace),
        labelSelector: `${LABEL_SOURCE_POD_UID}=${podUid}`,
      })) as { items?: Checkpoint[] };
      return list.items ?? [];
    } catch (e) {
      throw mapError(`${namespace}/* of pod ${podUid}`, e);
    }
  }

  async create(obj: Checkpoint): Promise<Checkpoint> {
    try {
      return (await this.api.createNamespacedCustomObject({
        ...this.params(obj.metadata.namespace),
        body: obj,
      })) as Checkpoint;
    } catch (e) {
      throw mapError(keyOf(obj), e);
    }
  }

  async replace(obj: Checkpoint, opts: CallOptions = {}): Promise<Checkpoint> {
    try {
      const call = abortOptions(opts.signal);
      return (await this.api.replaceNamespacedCustomObject(
        { ...this.params(obj.metadata.namespace), name: obj.metadata.name, body: obj },
        call,
      )) as Checkpoint;
    } catch (e) {
      throw mapError(keyOf(obj), e);
    }
  }

  async delete(namespace: string, name: string, uid?: string, resourceVersion?: string): Promise<boolean> {
    const preconditions = { ...(uid ? { uid } : {}), ...(resourceVersion ? { resourceVersion } : {}) };
    try {
      await this.api.deleteNamespacedCustomObject({
        ...this.params(namespace),
        name,
        ...(uid || resourceVersion ? { body: { preconditions } } : {}),
      });
      return true;
    } catch (e) {
      if (e instanceof ApiException && e.code === 404) return false;
      throw mapError(objectKey(namespace, name), e);
    }
  }
}
