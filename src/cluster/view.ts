// The cluster view: what the scheduling core reads, served from local caches fed by watches.
// Nothing here calls the API server on the request path.
import { CoreV1Api, CustomObjectsApi, SchedulingV1Api, type KubeConfig } from '@kubernetes/client-node';
import { CHECKPOINT_GROUP, CHECKPOINT_PLURAL, CHECKPOINT_VERSION, type Checkpoint } from '../api/checkpoint.js';
import type { Node, Pod, PriorityClass } from '../api/kubernetes.js';
import type { Logger } from '../log.js';
import { nodeFacts, podFacts, type NodeFacts, type PodFacts } from './facts.js';
import { KEY_CHECKPOINT_POLICY, keyOf, objectKey } from '../api/keys.js';
import { LIST_PAGE_SIZE, Reflector, type ListPage, type ReflectorOptions } from './reflector.js';

export interface PriorityClassFacts {
  name: string;
  value: number;
  /** hiatus.dev/checkpoint-policy from the PriorityClass's labels or annotations. */
  checkpointPolicy?: string;
}

export interface CacheSizes {
  nodes: number;
  pods: number;
  priorityClasses: number;
  checkpoints: number;
}

export interface ClusterView {
  /** "cluster" when fed by a real API server, "none" when judging from requests alone. */
  readonly mode: 'cluster' | 'none';
  node(name: string): NodeFacts | undefined;
  pod(uid: string): PodFacts | undefined;
  priorityClass(name: string): PriorityClassFacts | undefined;
  checkpoint(namespace: string, name: string): Checkpoint | undefined;
  checkpoints(): Iterable<Checkpoint>;
  /** Non-terminal pods. */
  pods(): Iterable<PodFacts>;
  /** Calls the listener with every pod added or changed, as the watch delivers it. */
  onPodUpsert(listener: (pod: PodFacts) => void): void;
  synced(): boolean;
  sizes(): CacheSizes;
  stop(): void;
}

/** The view without a cluster: knows nothing, so every decision comes from the request. */
export const noClusterView: ClusterView = {
  mode: 'none',
  node: () => undefined,
  pod: () => undefined,
  priorityClass: () => undefined,
  checkpoint: () => undefined,
  checkpoints: () => [],
  pods: () => [],
  onPodUpsert: () => {},
  synced: () => true,
  sizes: () => ({ nodes: 0, pods: 0, priorityClasses: 0, checkpoints: 0 }),
  stop: () => {},
};

export function priorityClassFacts(pc: PriorityClass): PriorityClassFacts {
  const meta = pc.metadata ?? {};
  const facts: PriorityClassFacts = { name: meta.name ?? '', value: pc.value ?? 0 };
  const policy = meta.labels?.[KEY_CHECKPOINT_POLICY] ?? meta.annotations?.[KEY_CHECKPOINT_POLICY];
  if (policy) facts.checkpointPolicy = policy;
  return facts;
}

// Same selector as kube-scheduler's own pod informer: terminal pods are never victims.
const NON_TERMINAL = 'status.phase!=Succeeded,status.phase!=Failed';

const page = (p: Promise<unknown>) => p as Promise<ListPage>;

/**
 * How a Reflector lists and watches Checkpoints, whole: every namespace, or only those the field
 * selector picks (the node agent's spec.source.nodeName=<node>).
 */
export function checkpointListing(
  custom: CustomObjectsApi,
  fieldSelector?: string,
): Omit<ReflectorOptions<Checkpoint, Checkpoint>, 'onChange'> {
  const selected = fieldSelector ? { fieldSelector } : {};
  return {
    kind: 'Checkpoint',
    path: `/apis/${CHECKPOINT_GROUP}/${CHECKPOINT_VERSION}/${CHECKPOINT_PLURAL}`,
    ...(fieldSelector ? { query: { fieldSelector } } : {}),
    list: (t) =>
      page(
        custom.listCustomObjectForAllNamespaces({
          group: CHECKPOINT_GROUP,
          version: CHECKPOINT_VERSION,
          plural: CHECKPOINT_PLURAL,
          limit: LIST_PAGE_SIZE,
          _continue: t,
          ...selected,
        }),
      ),
    project: (o: Checkpoint) => o,
    key: (o) => (o?.metadata?.name ? keyOf(o.metadata) : undefined),
  };
}

export class InformerClusterView implements ClusterView {
  readonly mode = 'cluster' as const;
  private readonly nodes: Reflector<Node, NodeFacts>;
  private readonly podReflector: Reflector<Pod, PodFacts>;
  private readonly classes: Reflector<PriorityClass, PriorityClassFacts>;
  private readonly checkpointReflector: Reflector<Checkpoint, Checkpoint>;
  private readonly podListeners: ((pod: PodFacts) => void)[] = [];

  constructor(kc: KubeConfig, log: Logger) {
    const core = kc.makeApiClient(CoreV1Api);
    const scheduling = kc.makeApiClient(SchedulingV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    this.nodes = new Reflector(
      kc,
      {
        kind: 'Node',
        path: '/api/v1/nodes',
        list: (t) => page(core.listNode({ limit: LIST_PAGE_SIZE, _continue: t })),
        project: nodeFacts,
        key: (o) => o?.metadata?.name,
      },
      log,
    );
    this.podReflector = new Reflector(
      kc,
      {
        kind: 'Pod',
        path: '/api/v1/pods',
        query: { fieldSelector: NON_TERMINAL },
        list: (t) =>
          page(core.listPodForAllNamespaces({ limit: LIST_PAGE_SIZE, _continue: t, fieldSelector: NON_TERMINAL })),
        project: podFacts,
        key: (o) => o?.metadata?.uid,
        onChange: (type, _key, pod) => {
          if (type === 'upsert' && pod) for (const listener of this.podListeners) listener(pod);
        },
      },
      log,
    );
    this.classes = new Reflector(
      kc,
      {
        kind: 'PriorityClass',
        path: '/apis/scheduling.k8s.io/v1/priorityclasses',
        list: (t) => page(scheduling.listPriorityClass({ limit: LIST_PAGE_SIZE, _continue: t })),
        project: priorityClassFacts,
        key: (o) => o?.metadata?.name,
      },
      log,
    );
    // Checkpoints are small records: kept whole.
    this.checkpointReflector = new Reflector(kc, checkpointListing(custom), log);
  }

  start(): this {
    this.nodes.start();
    this.podReflector.start();
    this.classes.start();
    this.checkpointReflector.start();
    return this;
  }

  node(name: string): NodeFacts | undefined {
    return this.nodes.store.get(name);
  }

  pod(uid: string): PodFacts | undefined {
    return this.podReflector.store.get(uid);
  }

  priorityClass(name: string): PriorityClassFacts | undefined {
    return this.classes.store.get(name);
  }

  checkpoint(namespace: string, name: string): Checkpoint | undefined {
    return this.checkpointReflector.store.get(objectKey(namespace, name));
  }

  checkpoints(): Iterable<Checkpoint> {
    return this.checkpointReflector.store.values();
  }

  pods(): Iterable<PodFacts> {
    return this.podReflector.store.values();
  }

  onPodUpsert(listener: (pod: PodFacts) => void): void {
    this.podListeners.push(listener);
  }

  synced(): boolean {
    return this.nodes.synced && this.podReflector.synced && this.classes.synced && this.checkpointReflector.synced;
  }

  sizes(): CacheSizes {
    return {
      nodes: this.nodes.store.size,
      pods: this.podReflector.store.size,
      priorityClasses: this.classes.store.size,
      checkpoints: this.checkpointReflector.store.size,
    };
  }

  stop(): void {
    this.nodes.stop();
    this.podReflector.stop();
    this.classes.stop();
    this.checkpointReflector.stop();
  }
}
