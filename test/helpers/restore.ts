// Fixtures of the restore webhook tests: Checkpoints of a ReplicaSet's pod, its replacement,
// the AdmissionReview the API server sends for it, and the patch the webhook answers.
import { expect } from '@jest/globals';
import type { Checkpoint, CheckpointPhase } from '../../src/api/checkpoint.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createWebhook, type WebhookDeps } from '../../src/restore/webhook.js';
import { claimTokenHash } from '../../src/restore/lifecycle.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { SnapshotView } from '../../testing/snapshotView.js';

export const NOW = Date.parse('2026-11-23T12:00:00Z');
export const iso = (ms: number) => new Date(ms).toISOString();

export function checkpoint(
  name: string,
  o: {
    owner?: string;
    /** The owner's kind: ReplicaSet unless given. */
    kind?: string;
    hash?: string;
    index?: number;
    phase?: CheckpointPhase;
    completedMinutesAgo?: number;
    image?: string;
    arch?: string;
  } = {},
): Checkpoint {
  return {
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name, namespace: 'ml', uid: `uid-${name}`, creationTimestamp: iso(NOW - 3600_000) },
    spec: {
      reason: 'Preemption',
      source: {
        pod: { namespace: 'ml', name: `src-${name}`, uid: `src-uid-${name}` },
        nodeName: 'worker-7',
        owner: { kind: o.kind ?? 'ReplicaSet', name: 'trainer-5c8f7', uid: o.owner ?? 'rs-1' },
        templateHash: o.hash ?? '5c8f7',
        ...(o.index !== undefined ? { index: o.index } : {}),
        priority: 100,
        memoryBytes: 2 ** 30,
      },
      containers: ['main', 'sidecar'],
      restoreConstraints: {
        node: 'worker-7',
        arch: o.arch ?? 'amd64',
        cpuFeatures: ['AVX2'],
        runtime: 'cri-o://1.31.2',
        zone: 'zone-a',
        kernel: '6.8.0',
      },
    },
    status: {
      phase: o.phase ?? 'Ready',
      startTime: iso(NOW - (o.completedMinutesAgo ?? 5) * 60_000 - 1000),
      completionTime: iso(NOW - (o.completedMinutesAgo ?? 5) * 60_000),
      containers: [
        { name: 'main', archivePath: '/var/lib/kubelet/checkpoints/main.tar', ...(o.image ? { image: o.image } : {}) },
        { name: 'sidecar', archivePath: '/var/lib/kubelet/checkpoints/sidecar.tar' },
      ],
    },
  };
}

export function replacement(
  o: {
    owner?: { kind: string; uid: string; name?: string };
    hash?: string;
    annotations?: Record<string, string>;
    name?: string;
    labels?: Record<string, string>;
  } = {},
): Pod {
  const owner = o.owner ?? { kind: 'ReplicaSet', uid: 'rs-1', name: 'trainer-5c8f7' };
  return {
    metadata: {
      ...(o.name ? { name: o.name } : { generateName: 'trainer-5c8f7-' }),
      namespace: 'ml',
      labels: { 'pod-template-hash': o.hash ?? '5c8f7', ...o.labels },
      ...(o.annotations ? { annotations: o.annotations } : {}),
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: owner.kind, name: owner.name ?? 'trainer', uid: owner.uid, controller: true },
      ],
    },
    spec: {
      schedulerName: 'default-scheduler',
      containers: [
        { name: 'main', image: 'trainer:1' },
        { name: 'sidecar', image: 'metrics:1' },
      ],
    },
    status: {},
  };
}

/**
 * A pod of the cache whose hiatus.dev/restore-from names `checkpoint`: one the webhook admitted, or
 * one that carries the name by hand.
 */
export function podNaming(
  checkpoint: string,
  name: string,
  uid: string,
  o: { nodeName?: string; phase?: string } = {},
): Pod {
  return {
    metadata: { name, namespace: 'ml', uid, annotations: { 'hiatus.dev/restore-from': checkpoint } },
    spec: { ...(o.nodeName ? { nodeName: o.nodeName } : {}), containers: [{ name: 'main' }] },
    ...(o.phase ? { status: { phase: o.phase } } : {}),
  };
}

export function review(
  pod: unknown,
  o: { uid?: string; operation?: string; kind?: object; dryRun?: boolean; apiVersion?: string } = {},
) {
  return {
    apiVersion: o.apiVersion ?? 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: o.uid ?? '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: o.kind ?? { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'ml',
      operation: o.operation ?? 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: pod,
      oldObject: null,
      dryRun: o.dryRun ?? false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

/** The contract of a checkpoint without published images: restorable on its source node only. */
export const CONTRACT =
  '{"node":"worker-7","arch":"amd64","cpuFeatures":["AVX2"],"runtime":"cri-o://1.31.2","zone":"zone-a","sourceOnly":true}';
/** The contract once every container's checkpoint image is published: any compatible node. */
export const CONTRACT_PUBLISHED =
  '{"node":"worker-7","arch":"amd64","cpuFeatures":["AVX2"],"runtime":"cri-o://1.31.2","zone":"zone-a"}';
/** The claim token a test's webhook hands out (its claimToken), and what its claim records of it. */
export const TOKEN = 'claim-token-of-the-test';
export const TOKEN_SHA256 = claimTokenHash(TOKEN);

/** The webhook's patch of a pod without annotations of its own: the contract's annotations in one op (and the claim's token, if given). */
export const contractOp = (from: string, constraints = CONTRACT, generation = '1', token?: string) => ({
  op: 'add',
  path: '/metadata/annotations',
  value: {
    'hiatus.dev/restore-from': from,
    'hiatus.dev/restore-constraints': constraints,
    'hiatus.dev/restore-generation': generation,
    ...(token !== undefined ? { 'hiatus.dev/restore-claim': token } : {}),
  },
});

/** The same into a pod's own annotations: one op per key (JSON Pointer escapes the key's /). */
export const contractOpsByKey = (from: string, constraints = CONTRACT, generation = '1', token?: string) => [
  { op: 'add', path: '/metadata/annotations/hiatus.dev~1restore-from', value: from },
  { op: 'add', path: '/metadata/annotations/hiatus.dev~1restore-constraints', value: constraints },
  { op: 'add', path: '/metadata/annotations/hiatus.dev~1restore-generation', value: generation },
  ...(token !== undefined
    ? [{ op: 'add', path: '/metadata/annotations/hiatus.dev~1restore-claim', value: token }]
    : []),
];

/** The marker resource on a first container that had no resources (managedResources, docs/restore-contract.md). */
export const MARKER = {
  op: 'add',
  path: '/spec/containers/0/resources',
  value: { requests: { 'hiatus.dev/checkpoint-restore': '0' }, limits: { 'hiatus.dev/checkpoint-restore': '0' } },
};
/** The move to the restore profile (--restore-scheduler-names default-scheduler=default-scheduler-restore). */
export const PROFILE = { op: 'add', path: '/spec/schedulerName', value: 'default-scheduler-restore' };

export function decodePatch(body: unknown): unknown {
  const r = (body as { response: { patch?: string; patchType?: string } }).response;
  expect(r.patchType).toBe('JSONPatch');
  return JSON.parse(Buffer.from(r.patch!, 'base64').toString('utf8'));
}

/** The restore webhook over an in-memory store and a snapshot cache that shows the store's records. */
export function webhookOnMemory(deps: Partial<WebhookDeps> = {}) {
  const store = new MemoryCheckpointStore();
  const view = new SnapshotView();
  view.checkpointsByKey = store.objects;
  const metrics = deps.metrics ?? new Metrics({ defaultMetrics: false });
  const webhook = createWebhook({
    view,
    store,
    metrics,
    log: silentLogger,
    maxAgeMs: 24 * 3600_000,
    reclaimAfterMs: 3_000,
    now: () => NOW,
    ...deps,
  });
  return { store, view, webhook, metrics };
}

/** The Checkpoint an admission answer's patch restores from, if it patches one in. */
export const restoresFrom = (body: unknown): string | undefined =>
  (body as { response: { patch?: string } }).response.patch
    ? (decodePatch(body) as { value: Record<string, string> }[])[0]!.value['hiatus.dev/restore-from']
    : undefined;
