import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { podFacts } from '../../src/cluster/facts.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { StoreUnavailable } from '../../src/checkpoint/store.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { RestoreController } from '../../src/restore/controller.js';
import { planLifecycle, podsByRestore } from '../../src/restore/lifecycle.js';
import { createWebhook } from '../../src/restore/webhook.js';
import { createWebhookApp } from '../../src/server/app.js';
import { post } from '../helpers/server.js';
import {
  CONTRACT,
  MARKER,
  NOW,
  PROFILE,
  checkpoint,
  contractOp,
  contractOpsByKey,
  decodePatch,
  iso,
  podNaming,
  replacement,
  restoresFrom,
  review,
  TOKEN,
  webhookOnMemory,
} from '../helpers/restore.js';

describe('the restore admission webhook over HTTP', () => {
  let view: SnapshotView;
  let store: MemoryCheckpointStore;
  let metrics: Metrics;
  let url: string;
  let server: http.Server;

  beforeAll(async () => {
    view = new SnapshotView();
    store = new MemoryCheckpointStore();
    view.checkpointsByKey = store.objects;
    metrics = new Metrics({ defaultMetrics: false });
    const app = createWebhookApp({
      mutatePods: createWebhook({
        view,
        store,
        metrics,
        log: silentLogger,
        maxAgeMs: 24 * 3600_000,
        reclaimAfterMs: 5_000,
        now: () => NOW,
        claimToken: () => TOKEN,
        restoreSchedulers: new Map([['default-scheduler', 'default-scheduler-restore']]),
      }),
      metrics,
      log: silentLogger,
      maxBodyBytes: 1024 * 1024,
    });
    server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mutate-pods`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    store.objects.clear();
    store.unavailable = false;
  });

  const put = async (...cs: Checkpoint[]) => {
    for (const c of cs) await store.create(c);
  };

  it("adds the restore contract to a ReplicaSet's replacement pod and claims the checkpoint", async () => {
    await put(checkpoint('ck-a'));
    const r = await post(url, review(replacement()));
    expect(r.status).toBe(200);
    expect((r.json as { response: object }).response).toMatchObject({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
    });
    expect(decodePatch(r.json)).toEqual([contractOp('ck-a', CONTRACT, '1', TOKEN), MARKER, PROFILE]);
    expect(store.objects.get('ml/ck-a')!.status).toMatchObject({
      phase: 'Restoring',
      restore: { claimedAt: iso(NOW), podName: 'trainer-5c8f7-*' },
    });
  });

  it('escapes annotation keys into existing annotations, and gives no image the node agent did not publish', async () => {
    // An image on the record without a Published publication (and no --checkpoint-images): never given.
    await put(checkpoint('ck-a', { image: 'registry.local/checkpoints/trainer-0:ck-a' }));
    const r = await post(url, review(replacement({ annotations: { team: 'ml' } })));
    expect(decodePatch(r.json)).toEqual([...contractOpsByKey('ck-a', CONTRACT, '1', TOKEN), MARKER, PROFILE]);
  });

  it('gives the newest checkpoint of the workload, and each of two concurrent pods its own', async () => {
    await put(checkpoint('ck-old', { completedMinutesAgo: 30 }), checkpoint('ck-new', { completedMinutesAgo: 1 }));
    const [a, b] = await Promise.all([
      post(url, review(replacement(), { uid: 'a' })),
      post(url, review(replacement(), { uid: 'b' })),
    ]);
    const froms = [a, b]
      .map((r) => (decodePatch(r.json) as { value: Record<string, string> }[])[0]!.value['hiatus.dev/restore-from'])
      .sort();
    expect(froms).toEqual(['ck-new', 'ck-old']);
    expect([...store.objects.values()].map((c) => c.status!.phase)).toEqual(['Restoring', 'Restoring']);
  });

  it('never restores one checkpoint twice: of two concurrent pods, one gets it, the other none', async () => {
    await put(checkpoint('ck-a'));
    const answers = await Promise.all([1, 2, 3].map((i) => post(url, review(replacement(), { uid: `u${i}` }))));
    const patched = answers.filter((r) => (r.json as { response: { patch?: string } }).response.patch);
    expect(patched).toHaveLength(1);
    expect(
      answers.every((r) => r.status === 200 && (r.json as { response: { allowed: boolean } }).response.allowed),
    ).toBe(true);
  });

  it.each([
    ['another workload', replacement({ owner: { kind: 'ReplicaSet', uid: 'rs-other' } })],
    ['another pod template', replacement({ hash: 'abcde' })],
    ['no owner', { metadata: { name: 'bare', namespace: 'ml' }, spec: { containers: [{ name: 'main' }] } }],
    ['an opt-out', replacement({ annotations: { 'hiatus.dev/restore': 'false' } })],
  ])('allows a pod with %s unchanged', async (_what, pod) => {
    await put(checkpoint('ck-a'));
    const r = await post(url, review(pod));
    expect(r.status).toBe(200);
    expect((r.json as { response: object }).response).toEqual({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
    });
    expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Ready');
  });

  const warningsOf = (r: { json: unknown }) => (r.json as { response: { warnings?: string[] } }).response.warnings;

  it.each([
    [
      'a pod of another workload',
      replacement({
        owner: { kind: 'ReplicaSet', uid: 'rs-other', name: 'intruder-7d9f' },
        annotations: { 'hiatus.dev/restore-from': 'ck-a' },
      }),
    ],
    [
      'a standalone pod',
      {
        metadata: { name: 'bare', namespace: 'ml', annotations: { 'hiatus.dev/restore-from': 'ck-a' } },
        spec: { containers: [{ name: 'main', image: 'x:1' }] },
      },
    ],
    [
      'a pod whose owner has the same UID but another name',
      replacement({
        owner: { kind: 'ReplicaSet', uid: 'rs-1', name: 'not-trainer' },
        annotations: { 'hiatus.dev/restore-from': 'ck-a' },
      }),
    ],
  ])(
    "refuses a hand-written restore-from naming another workload's checkpoint for %s: unchanged, unclaimed, warned",
    async (_what, pod) => {
      await put(checkpoint('ck-a', { image: 'registry.local/checkpoints/trainer:ck-a' }));
      const before = (await metrics.restores.get()).values.find((v) => v.labels.result === 'refused')?.value ?? 0;
      const r = await post(url, review(pod));
      expect(r.status).toBe(200);
      const response = (r.json as { response: Record<string, unknown> }).response;
      expect(response.patch).toBeUndefined();
      expect(response.allowed).toBe(true);
      expect(warningsOf(r)).toEqual([
        'hiatus.dev/restore-from: ck-a not honoured (another workload\'s checkpoint; an administrator may allow it with the Checkpoint annotation hiatus.dev/restore-any-pod: "true"); the pod is created without restore',
      ]);
      expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Ready');
      const after = (await metrics.restores.get()).values.find((v) => v.labels.result === 'refused')?.value ?? 0;
      expect(after).toBe(before + 1);
    },
  );

  it('honours a hand-written restore-from for a pod of the checkpointed workload, and for any pod once the Checkpoint allows it', async () => {
    await put(checkpoint('ck-a'), checkpoint('ck-b'));
    // Same controller (kind, name, UID), another pod template: the name decides, not the match.
    const sibling = replacement({ hash: 'other', annotations: { 'hiatus.dev/restore-from': 'ck-a' } });
    const r = await post(url, review(sibling));
    expect(decodePatch(r.json)).toContainEqual({
      op: 'add',
      path: '/metadata/annotations/hiatus.dev~1restore-constraints',
      value: CONTRACT,
    });
    expect(warningsOf(r)).toBeUndefined();
    expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Restoring');

    const allowed = store.objects.get('ml/ck-b')!;
    allowed.metadata.annotations = { 'hiatus.dev/restore-any-pod': 'true' };
    const bare = {
      metadata: { name: 'bare', namespace: 'ml', annotations: { 'hiatus.dev/restore-from': 'ck-b' } },
      spec: {
        containers: [
          { name: 'main', image: 'x:1' },
          { name: 'sidecar', image: 'y:1' },
        ],
      },
    };
    const b = await post(url, review(bare));
    expect((decodePatch(b.json) as { path: string }[]).map((o) => o.path)).toContain(
      '/metadata/annotations/hiatus.dev~1restore-constraints',
    );
    expect(store.objects.get('ml/ck-b')!.status!.restore!.podName).toBe('bare');
  });

  it('warns a pod whose hand-written restore-from it cannot honour because the checkpoint is claimed', async () => {
    await put(checkpoint('ck-a'));
    const named = () => replacement({ annotations: { 'hiatus.dev/restore-from': 'ck-a' } });
    const [first, second] = [
      await post(url, review(named(), { uid: 'a' })),
      await post(url, review(named(), { uid: 'b' })),
    ];
    expect(warningsOf(first)).toBeUndefined();
    expect((second.json as { response: Record<string, unknown> }).response.patch).toBeUndefined();
    expect(warningsOf(second)).toEqual([
      "hiatus.dev/restore-from: ck-a not honoured (the workload's checkpoint was claimed moments ago by a pod not seen yet); the pod is created without restore",
    ]);
  });

  it('skips checkpoints that are claimed, failed, too old or have corrupt constraints', async () => {
    await put(
      checkpoint('ck-restoring', { phase: 'Restoring' }),
      checkpoint('ck-failed', { phase: 'Failed' }),
      checkpoint('ck-stale', { completedMinutesAgo: 25 * 60 }),
      checkpoint('ck-corrupt', { arch: '' }),
    );
    const r = await post(url, review(replacement()));
    expect((r.json as { response: object }).response).toEqual({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
    });
    const corrupt = (await metrics.restores.get()).values.find((v) => v.labels.result === 'corrupt_checkpoint');
    expect(corrupt?.value).toBeGreaterThanOrEqual(1);
  });

  it('counts corrupt records only for a pod that restores from none of its checkpoints, once per pod', async () => {
    const corrupted = () => [checkpoint('ck-corrupt', { arch: '' }), checkpoint('ck-corrupt-2', { arch: '' })];
    const counted = async (m: Metrics) =>
      (await m.restores.get()).values.find((v) => v.labels.result === 'corrupt_checkpoint')?.value ?? 0;

    const restoring = webhookOnMemory();
    for (const c of [...corrupted(), checkpoint('ck-good', { completedMinutesAgo: 10 })])
      await restoring.store.create(c);
    expect(restoresFrom((await restoring.webhook(review(replacement()))).body)).toBe('ck-good');
    expect(await counted(restoring.metrics)).toBe(0);

    const fresh = webhookOnMemory();
    for (const c of corrupted()) await fresh.store.create(c);
    expect(restoresFrom((await fresh.webhook(review(replacement()))).body)).toBeUndefined();
    expect(await counted(fresh.metrics)).toBe(1);
  });

  it('matches a StatefulSet pod by ordinal and an indexed Job pod by completion index', async () => {
    await put(
      checkpoint('ck-0', { owner: 'sts-1', kind: 'StatefulSet', hash: 'rev1', index: 0 }),
      checkpoint('ck-1', { owner: 'sts-1', kind: 'StatefulSet', hash: 'rev1', index: 1 }),
    );
    const sts = replacement({
      owner: { kind: 'StatefulSet', uid: 'sts-1' },
      name: 'trainer-1',
      labels: { 'controller-revision-hash': 'rev1' },
    });
    delete sts.metadata!.labels!['pod-template-hash'];
    const r = await post(url, review(sts));
    expect((decodePatch(r.json) as { value: Record<string, string> }[])[0]!.value['hiatus.dev/restore-from']).toBe(
      'ck-1',
    );

    await put(checkpoint('ck-job-2', { owner: 'job-1', kind: 'Job', hash: 'jh', index: 2 }));
    const job = replacement({ owner: { kind: 'Job', uid: 'job-1' }, hash: 'jh' });
    job.metadata!.annotations = { 'batch.kubernetes.io/job-completion-index': '2' };
    const j = await post(url, review(job));
    expect(decodePatch(j.json)).toEqual([...contractOpsByKey('ck-job-2', CONTRACT, '1', TOKEN), MARKER, PROFILE]);
  });

  it('adds only the marker resource to a pod whose contract was written by hand, merging into its resources', async () => {
    await put(checkpoint('ck-a'));
    const handWritten = replacement({
      annotations: { 'hiatus.dev/restore-from': 'x', 'hiatus.dev/restore-constraints': '{}' },
    });
    handWritten.spec!.containers![0]!.resources = { requests: { cpu: '2' } };
    const r = await post(url, review(handWritten));
    expect(decodePatch(r.json)).toEqual([
      { op: 'add', path: '/spec/containers/0/resources/requests/hiatus.dev~1checkpoint-restore', value: '0' },
      { op: 'add', path: '/spec/containers/0/resources/limits', value: { 'hiatus.dev/checkpoint-restore': '0' } },
      PROFILE,
    ]);
    expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Ready');
    const marked = (await metrics.restores.get()).values.find((v) => v.labels.result === 'marked');
    expect(marked?.value).toBeGreaterThanOrEqual(1);
  });

  it('leaves a hand-written contract unchanged when a container already requests the marker and its profile is not listed', async () => {
    const handWritten = replacement({
      annotations: { 'hiatus.dev/restore-from': 'x', 'hiatus.dev/restore-constraints': '{}' },
    });
    handWritten.spec!.containers![1]!.resources = { limits: { 'hiatus.dev/checkpoint-restore': '0' } };
    handWritten.spec!.schedulerName = 'hiatus-scheduler-restore';
    const r = await post(url, review(handWritten));
    expect((r.json as { response: object }).response).toEqual({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
    });
  });

  it('moves only the profiles it is told about: a pod of another scheduler keeps its schedulerName', async () => {
    await put(checkpoint('ck-a'));
    const pod = replacement();
    pod.spec!.schedulerName = 'gpu-scheduler';
    const ops = decodePatch((await post(url, review(pod))).json) as { path: string }[];
    expect(ops.map((o) => o.path)).toEqual(['/metadata/annotations', '/spec/containers/0/resources']);
  });

  it("reads the record live when its cache still shows the workload's checkpoint Pending", async () => {
    await put(checkpoint('ck-a'));
    const lagging = structuredClone(store.objects.get('ml/ck-a')!);
    lagging.status = { phase: 'Pending', startTime: lagging.status!.startTime! };
    const cache = view.checkpointsByKey;
    view.checkpointsByKey = new Map([['ml/ck-a', lagging]]);
    try {
      const r = await post(url, review(replacement()));
      expect((decodePatch(r.json) as { value: Record<string, string> }[])[0]!.value['hiatus.dev/restore-from']).toBe(
        'ck-a',
      );
      expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Restoring');
    } finally {
      view.checkpointsByKey = cache;
    }
  });

  it('offers again a claim that no pod took up (its pod was rejected after admission)', async () => {
    const abandoned = checkpoint('ck-a', { phase: 'Restoring' });
    abandoned.status!.restore = { claimedAt: iso(NOW - 10_000), podName: 'trainer-5c8f7-*' };
    const fresh = checkpoint('ck-b', { phase: 'Restoring' });
    fresh.status!.restore = { claimedAt: iso(NOW - 1_000), podName: 'trainer-5c8f7-*' };
    await put(abandoned, fresh);
    const r = await post(url, review(replacement()));
    expect((decodePatch(r.json) as { value: Record<string, string> }[])[0]!.value['hiatus.dev/restore-from']).toBe(
      'ck-a',
    );
    expect(store.objects.get('ml/ck-a')!.status!.restore!.claimedAt).toBe(iso(NOW));
    expect(store.objects.get('ml/ck-b')!.status!.restore!.claimedAt).toBe(iso(NOW - 1_000));
  });

  it("claims a record another writer updated since the cache saw it (the node agent's upload), but never another pod's claim", async () => {
    await put(checkpoint('ck-a'), checkpoint('ck-b', { completedMinutesAgo: 30 }));
    const cache = view.checkpointsByKey;
    view.checkpointsByKey = new Map([...store.objects].map(([k, c]) => [k, structuredClone(c)]));
    try {
      // After the cache's copy: the agent records its upload on ck-a (not a claim) ...
      const a = (await store.get('ml', 'ck-a'))!;
      a.status!.message = 'uploading';
      await store.replace(a);
      const first = await post(url, review(replacement(), { uid: 'first' }));
      expect(
        (decodePatch(first.json) as { value: Record<string, string> }[])[0]!.value['hiatus.dev/restore-from'],
      ).toBe('ck-a');
      expect(store.objects.get('ml/ck-a')!.status).toMatchObject({
        phase: 'Restoring',
        message: 'uploading',
        restore: { claimedAt: iso(NOW), podName: 'trainer-5c8f7-*' },
      });
      // ... and another pod claims ck-b: the next pod gets neither, as the cache still shows both Ready.
      const b = (await store.get('ml', 'ck-b'))!;
      b.status = { ...b.status!, phase: 'Restoring', restore: { claimedAt: iso(NOW), podName: 'other-*' } };
      await store.replace(b);
      const second = await post(url, review(replacement(), { uid: 'second' }));
      expect((second.json as { response: { patch?: string } }).response.patch).toBeUndefined();
      expect(store.objects.get('ml/ck-b')!.status!.restore!.podName).toBe('other-*');
    } finally {
      view.checkpointsByKey = cache;
    }
  });

  it('answers a dry run with the patch but claims nothing', async () => {
    await put(checkpoint('ck-a'));
    const r = await post(url, review(replacement(), { dryRun: true }));
    expect(decodePatch(r.json)).toHaveLength(3);
    expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Ready');
  });

  it('lets the pod through unchanged when the API server cannot record the claim', async () => {
    await put(checkpoint('ck-a'));
    store.unavailable = true;
    const r = await post(url, review(replacement()));
    expect((r.json as { response: object }).response).toEqual({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
    });
  });

  it('claims the next checkpoint when the newest was deleted between the read and the claim (PUT 404)', async () => {
    const r = webhookOnMemory();
    await r.store.create(checkpoint('ck-new', { completedMinutesAgo: 1 }));
    await r.store.create(checkpoint('ck-old', { completedMinutesAgo: 10 }));
    const replace = r.store.replace.bind(r.store);
    r.store.replace = async (c: Checkpoint) => {
      if (c.metadata.name !== 'ck-new') return replace(c);
      // Retention deleted it meanwhile: the API server answers the PUT 404 (store.ts, mapError).
      r.store.objects.delete('ml/ck-new');
      throw new StoreUnavailable('ml/ck-new', 'API server answered 404');
    };
    const a = await r.webhook(review(replacement()));
    expect(restoresFrom(a.body)).toBe('ck-old');
    expect(r.store.objects.get('ml/ck-old')!.status!.phase).toBe('Restoring');
  });

  it("allows other kinds and operations without a patch, answering in the request's version", async () => {
    const upd = await post(url, review(replacement(), { operation: 'UPDATE' }));
    expect((upd.json as { response: object }).response).toEqual({
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      allowed: true,
    });
    const dep = await post(
      url,
      review(
        {},
        { kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, apiVersion: 'admission.k8s.io/v1beta1' },
      ),
    );
    expect(dep.json).toEqual({
      apiVersion: 'admission.k8s.io/v1beta1',
      kind: 'AdmissionReview',
      response: { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true },
    });
  });

  it.each([
    ['not JSON', 'nope', /body is not JSON/],
    ['not an AdmissionReview', { kind: 'Pod' }, /expected an AdmissionReview/],
    [
      'no request uid',
      { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' } } },
      /no uid/,
    ],
  ])(
    'answers a malformed review (%s) with 400, which failurePolicy Ignore turns into an admitted pod',
    async (_what, body, message) => {
      const r = await post(url, body);
      expect(r.status).toBe(400);
      expect((r.json as { error: string }).error).toMatch(message);
    },
  );
});

describe('restore lifecycle', () => {
  const claimed = (name: string, minutesAgo: number, podUID?: string): Checkpoint => {
    const c = checkpoint(name, { phase: 'Restoring' });
    // Claimed for the pod named like it (ck-run: p-run), as the webhook writes a named pod's claim.
    c.status!.restore = {
      claimedAt: iso(NOW - minutesAgo * 60_000),
      podName: name.replace(/^ck-/, 'p-'),
      ...(podUID ? { podUID } : {}),
    };
    return c;
  };
  const pod = (name: string, from: string, o: { phase?: string; node?: string } = {}) =>
    podFacts({
      metadata: { name, namespace: 'ml', uid: `uid-${name}`, annotations: { 'hiatus.dev/restore-from': from } },
      spec: { ...(o.node ? { nodeName: o.node } : {}), containers: [{ name: 'main' }] },
      status: { phase: o.phase ?? 'Pending' },
    });
  const times = { now: NOW, restoreTimeoutMs: 10 * 60_000, claimGraceMs: 30_000 };

  it('never gives back the claim of a pod that was on a node and is terminating: restored or consumed, not Ready again', () => {
    const terminating = (name: string, phase: string) =>
      podFacts({
        metadata: {
          name,
          namespace: 'ml',
          uid: `uid-${name}`,
          deletionTimestamp: iso(NOW - 1_000),
          annotations: { 'hiatus.dev/restore-from': name.replace(/^p-/, 'ck-') },
        },
        spec: { nodeName: 'worker-7', containers: [{ name: 'main' }] },
        status: { phase },
      });
    // Bound (UID) before this round, never seen on its node: the claim has no nodeName.
    const kinds = planLifecycle(
      [claimed('ck-ran', 2, 'uid-p-ran'), claimed('ck-starting', 2, 'uid-p-starting')],
      podsByRestore([terminating('p-ran', 'Running'), terminating('p-starting', 'Pending')]),
      times,
    ).map((a) => [a.checkpoint.metadata.name, a.kind]);
    expect(kinds).toEqual([
      ['ck-ran', 'restored'],
      ['ck-starting', 'consumed'],
    ]);
  });

  it('binds the claim to its pod, marks it Restored once the pod runs, releases or fails it otherwise', () => {
    // Placed on a node, then gone before the loop saw it run (e.g. it finished): consumed.
    const left = claimed('ck-left', 2, 'uid-p-left');
    left.status!.restore!.nodeName = 'worker-7';
    const actions = planLifecycle(
      [
        claimed('ck-bind', 1),
        claimed('ck-run', 2, 'uid-p-run'),
        claimed('ck-gone', 3, 'uid-deleted'),
        claimed('ck-never', 2),
        claimed('ck-young', 0.1),
        claimed('ck-slow', 11, 'uid-p-slow'),
        claimed('ck-placed', 1, 'uid-p-placed'),
        left,
        checkpoint('ck-ready'),
      ],
      podsByRestore([
        pod('p-bind', 'ck-bind'),
        pod('p-run', 'ck-run', { phase: 'Running', node: 'worker-7' }),
        pod('p-slow', 'ck-slow'),
        pod('p-placed', 'ck-placed', { node: 'worker-7' }),
      ]),
      times,
    );
    expect(actions.map((a) => [a.kind, a.checkpoint.metadata.name])).toEqual([
      ['bind', 'ck-bind'],
      ['restored', 'ck-run'],
      ['release', 'ck-gone'],
      ['release', 'ck-never'],
      ['fail', 'ck-slow'],
      ['bind', 'ck-placed'],
      ['consumed', 'ck-left'],
    ]);
  });

  it('binds a claim only to the pod it was written for: its generateName, never a pod that merely names the checkpoint', () => {
    const generated = claimed('ck-gen', 1);
    generated.status!.restore!.podName = 'trainer-5c8f7-*';
    const actions = planLifecycle(
      [generated, claimed('ck-named', 0.1)],
      podsByRestore([pod('intruder', 'ck-gen'), pod('trainer-5c8f7-x2k9d', 'ck-gen'), pod('p-named-not', 'ck-named')]),
      times,
    );
    expect(
      actions.map((a) => [a.kind, a.checkpoint.metadata.name, a.kind === 'bind' ? a.pod.name : undefined]),
    ).toEqual([['bind', 'ck-gen', 'trainer-5c8f7-x2k9d']]);
  });

  it('says where a restore that timed out stands: on a node, or never bound', () => {
    const actions = planLifecycle(
      [claimed('ck-stuck', 11, 'uid-p-stuck'), claimed('ck-slow', 11, 'uid-p-slow')],
      podsByRestore([pod('p-stuck', 'ck-stuck', { node: 'worker-7' }), pod('p-slow', 'ck-slow')]),
      times,
    );
    expect(actions.map((a) => (a.kind === 'fail' ? a.why : a.kind))).toEqual([
      'pod ml/p-stuck did not start within 600 s on node worker-7',
      'pod ml/p-slow did not start within 600 s and was never bound to a node: see its FailedScheduling events; ' +
        'without any, no kube-scheduler serves its schedulerName (the profiles of --restore-scheduler-names must exist)',
    ]);
  });

  it('runs the plan against the API: Restored with the node, and a failed restore leaves an event', async () => {
    const store = new MemoryCheckpointStore();
    const view = new SnapshotView({
      pods: [
        podNaming('ck-run', 'p-run', 'uid-p-run', { nodeName: 'worker-7', phase: 'Running' }),
        podNaming('ck-slow', 'p-slow', 'uid-p-slow', { phase: 'Pending' }),
      ],
    });
    view.checkpointsByKey = store.objects;
    await store.create(claimed('ck-run', 1));
    await store.create(claimed('ck-slow', 11, 'uid-p-slow'));
    const events: string[] = [];
    const controller = new RestoreController({
      view,
      store,
      metrics: new Metrics({ defaultMetrics: false }),
      log: silentLogger,
      event: async (ns, p, type, reason, message) => {
        events.push(`${ns}/${p} ${type} ${reason}: ${message}`);
      },
      restoreTimeoutMs: 10 * 60_000,
      claimGraceMs: 30_000,
      retention: { maxPerWorkload: 3, maxAgeMs: 86_400_000, consumedTtlMs: 3_600_000 },
      lifecycleIntervalMs: 1000,
      retentionIntervalMs: 1000,
      now: () => NOW,
    });
    expect(await controller.reconcileLifecycle()).toBe(2);
    expect(store.objects.get('ml/ck-run')!.status).toMatchObject({
      phase: 'Restored',
      restore: { podUID: 'uid-p-run', nodeName: 'worker-7', restoredAt: iso(NOW) },
    });
    const why =
      'pod ml/p-slow did not start within 600 s and was never bound to a node: see its FailedScheduling events; ' +
      'without any, no kube-scheduler serves its schedulerName (the profiles of --restore-scheduler-names must exist)';
    expect(store.objects.get('ml/ck-slow')!.status).toMatchObject({
      phase: 'Failed',
      message: `restore failed: ${why}`,
    });
    expect(events).toEqual([`ml/p-slow Warning RestoreFailed: checkpoint ck-slow: ${why}`]);
  });
});
