// The Checkpoint store as a map: the API server's create/replace/delete semantics (409 on a
// stale resourceVersion or a taken name, 404 on an update of a missing object), for unit tests
// and benchmarks.
import { LABEL_SOURCE_POD_UID, type Checkpoint } from '../src/api/checkpoint.js';
import { StoreConflict, StoreNotFound, StoreUnavailable, type CheckpointStore } from '../src/checkpoint/store.js';

/** An in-memory store with the API server's create/replace semantics, for tests and benchmarks. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly objects = new Map<string, Checkpoint>();
  private rv = 0;
  /** When set, every call fails as if the API server were down. */
  unavailable = false;
  writes = 0;
  lists = 0;

  private key(ns: string, name: string): string {
    return `${ns}/${name}`;
  }

  private check(what: string): void {
    if (this.unavailable) throw new StoreUnavailable(what, 'connect ECONNREFUSED');
  }

  async get(namespace: string, name: string): Promise<Checkpoint | undefined> {
    this.check(`${namespace}/${name}`);
    const o = this.objects.get(this.key(namespace, name));
    return o ? structuredClone(o) : undefined;
  }

  async listForPod(namespace: string, podUid: string): Promise<Checkpoint[]> {
    this.check(`${namespace}/* of pod ${podUid}`);
    this.lists++;
    return [...this.objects.values()]
      .filter((o) => o.metadata.namespace === namespace && o.metadata.labels?.[LABEL_SOURCE_POD_UID] === podUid)
      .map((o) => structuredClone(o));
  }

  async create(obj: Checkpoint): Promise<Checkpoint> {
    const k = this.key(obj.metadata.namespace, obj.metadata.name);
    this.check(k);
    if (this.objects.has(k)) throw new StoreConflict(k);
    const stored: Checkpoint = structuredClone(obj);
    stored.metadata.resourceVersion = String(++this.rv);
    stored.metadata.uid = `uid-${this.rv}`;
    stored.metadata.creationTimestamp = new Date().toISOString();
    this.objects.set(k, stored);
    this.writes++;
    return structuredClone(stored);
  }

  async replace(obj: Checkpoint): Promise<Checkpoint> {
    const k = this.key(obj.metadata.namespace, obj.metadata.name);
    this.check(k);
    const current = this.objects.get(k);
    if (!current) throw new StoreNotFound(k);
    if (current.metadata.resourceVersion !== obj.metadata.resourceVersion) throw new StoreConflict(k);
    const stored: Checkpoint = structuredClone(obj);
    stored.metadata.resourceVersion = String(++this.rv);
    this.objects.set(k, stored);
    this.writes++;
    return structuredClone(stored);
  }

  async delete(namespace: string, name: string, uid?: string, resourceVersion?: string): Promise<boolean> {
    const k = this.key(namespace, name);
    this.check(k);
    const current = this.objects.get(k);
    if (!current) return false;
    if (uid && current.metadata.uid !== uid) throw new StoreConflict(k);
    if (resourceVersion && current.metadata.resourceVersion !== resourceVersion) throw new StoreConflict(k);
    this.objects.delete(k);
    this.writes++;
    return true;
  }
}
