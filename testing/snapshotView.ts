import { nodeFacts, podFacts, type NodeFacts, type PodFacts } from '../src/cluster/facts.js';
import type { Node, Pod } from '../src/api/kubernetes.js';
import type { Checkpoint } from '../src/api/checkpoint.js';
import type { CacheSizes, ClusterView, PriorityClassFacts } from '../src/cluster/view.js';

/** A fixed view built from objects: for tests, benchmarks and the simulator-driven demo. */
export class SnapshotView implements ClusterView {
  readonly mode = 'cluster' as const;
  readonly nodes = new Map<string, NodeFacts>();
  readonly podsByUid = new Map<string, PodFacts>();
  readonly classes = new Map<string, PriorityClassFacts>();
  /** Checkpoints by namespace/name; tests may point this at a store's map. */
  checkpointsByKey = new Map<string, Checkpoint>();
  isSynced = true;
  private readonly podListeners: ((pod: PodFacts) => void)[] = [];

  constructor(init: { nodes?: Node[]; pods?: Pod[]; priorityClasses?: PriorityClassFacts[] } = {}) {
    for (const n of init.nodes ?? []) this.addNode(n);
    for (const p of init.pods ?? []) this.addPod(p);
    for (const c of init.priorityClasses ?? []) this.classes.set(c.name, c);
  }

  addNode(n: Node): void {
    const f = nodeFacts(n);
    this.nodes.set(f.name, f);
  }

  /** Adds or replaces a pod and tells the onPodUpsert listeners, as a watch event would. */
  addPod(p: Pod): void {
    const f = podFacts(p);
    this.podsByUid.set(f.uid, f);
    for (const listener of this.podListeners) listener(f);
  }

  onPodUpsert(listener: (pod: PodFacts) => void): void {
    this.podListeners.push(listener);
  }

  node(name: string): NodeFacts | undefined {
    return this.nodes.get(name);
  }

  pod(uid: string): PodFacts | undefined {
    return this.podsByUid.get(uid);
  }

  priorityClass(name: string): PriorityClassFacts | undefined {
    return this.classes.get(name);
  }

  checkpoint(namespace: string, name: string): Checkpoint | undefined {
    return this.checkpointsByKey.get(`${namespace}/${name}`);
  }

  checkpoints(): Iterable<Checkpoint> {
    return this.checkpointsByKey.values();
  }

  pods(): Iterable<PodFacts> {
    return this.podsByUid.values();
  }

  synced(): boolean {
    return this.isSynced;
  }

  sizes(): CacheSizes {
    return {
      nodes: this.nodes.size,
      pods: this.podsByUid.size,
      priorityClasses: this.classes.size,
      checkpoints: this.checkpointsByKey.size,
    };
  }

  stop(): void {}
}
