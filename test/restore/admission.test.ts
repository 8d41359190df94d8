// The restore webhook's pure decisions (src/restore/admission.ts) and the shell's handling of
// claims no pod took up yet (src/restore/webhook.ts), on a clock the test moves.
import { describe, expect, it } from '@jest/globals';
import { podFacts } from '../../src/cluster/facts.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { decideAdmission, decodeReview, reviewResponse } from '../../src/restore/admission.js';
import { restoreFromRefusal } from '../../src/restore/match.js';
import { CLAIM_WAIT_MS, RECLAIM_AFTER_MS } from '../../src/restore/webhook.js';
import type { Pod } from '../../src/api/kubernetes.js';
import {
  NOW,
  checkpoint,
  decodePatch,
  iso,
  podNaming,
  replacement,
  review,
  restoresFrom,
  webhookOnMemory,
} from '../helpers/restore.js';

const MATCH = { now: NOW, maxAgeMs: 24 * 3600_000, reclaimAfterMs: 3_000 };
const SCHEDULING = { schedulers: new Map<string, string>(), placementGate: false };
const named = (from: string, pod: Pod = replacement()): Pod => ({
  ...pod,
  metadata: { ...pod.metadata, annotations: { 'hiatus.dev/restore-from': from } },
});

describe('decodeReview', () => {
  it('reads a pod CREATE: namespace from the request, name or generateName, dry run, user', () => {
    const r = decodeReview(review(replacement(), { dryRun: true }));
    expect(r).toMatchObject({
      kind: 'pod',
      apiVersion: 'admission.k8s.io/v1',
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      namespace: 'ml',
      podName: 'trainer-5c8f7-*',
      dryRun: true,
      user: 'system:serviceaccount:kube-system:replicaset-controller',
    });
  });

  it.each([
    ['a body that is no review', { kind: 'Pod' }, 'invalid'],
    ['a review without uid', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: {} }, 'invalid'],
    ['an UPDATE', review(replacement(), { operation: 'UPDATE' }), 'allow'],
    ['another kind', review({}, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }), 'allow'],
    ['a pod that is not an object', review('pod'), 'allow'],
  ])('answers %s without a decision', (_what, body, kind) => {
    expect(decodeReview(body).kind).toBe(kind);
  });
});

describe('reviewResponse', () => {
  it('is always allowed, carries a JSONPatch and warnings only when there are some', () => {
    expect(reviewResponse('admission.k8s.io/v1', 'u')).toEqual({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: 'u', allowed: true },
    });
    const body = reviewResponse('admission.k8s.io/v1', 'u', [{ op: 'add', path: '/x', value: 1 }], ['careful']);
    expect(decodePatch(body)).toEqual([{ op: 'add', path: '/x', value: 1 }]);
    expect((body as { response: { warnings: string[] } }).response.warnings).toEqual(['careful']);
  });
});

describe('restoreFromRefusal', () => {
  const ck = checkpoint('ck-a');
  it('lets a pod of the same controller (kind, name and UID) through, and no other', () => {
    expect(restoreFromRefusal(podFacts(replacement()), ck)).toBeUndefined();
    expect(
      restoreFromRefusal(podFacts(replacement({ owner: { kind: 'ReplicaSet', uid: 'rs-1', name: 'other' } })), ck),
    ).toMatch(/is of ReplicaSet trainer-5c8f7, the pod has ReplicaSet other/);
    expect(
      restoreFromRefusal(
        podFacts(replacement({ owner: { kind: 'StatefulSet', uid: 'rs-1', name: 'trainer-5c8f7' } })),
        ck,
      ),
    ).toBeDefined();
    expect(restoreFromRefusal(podFacts({ metadata: { name: 'bare' } }), ck)).toMatch(/the pod has no controller/);
  });

  it('lets any pod through once the Checkpoint is annotated hiatus.dev/restore-any-pod: "true", and nothing else opens it', () => {
    const open = checkpoint('ck-open');
    open.metadata.annotations = { 'hiatus.dev/restore-any-pod': 'true' };
    expect(restoreFromRefusal(podFacts({ metadata: { name: 'bare' } }), open)).toBeUndefined();
    open.metadata.annotations = { 'hiatus.dev/restore-any-pod': 'yes' };
    expect(restoreFromRefusal(podFacts({ metadata: { name: 'bare' } }), open)).toBeDefined();
    const standalone = checkpoint('ck-bare');
    delete standalone.spec.source.owner;
    expect(restoreFromRefusal(podFacts({ metadata: { name: 'bare' } }), standalone)).toMatch(/is of a standalone pod/);
  });
});

describe('decideAdmission', () => {
  it("claims the workload's newest Ready checkpoints, newest first", () => {
    const d = decideAdmission(
      replacement(),
      'ml',
      [checkpoint('ck-old', { completedMinutesAgo: 30 }), checkpoint('ck-new', { completedMinutesAgo: 1 })],
      MATCH,
      SCHEDULING,
    );
    expect(d.kind === 'claim' && d.checkpoints.map((c) => c.metadata.name)).toEqual(['ck-new', 'ck-old']);
  });

  it("refuses another workload's checkpoint named by hand whatever its phase, with a warning and nothing to patch", () => {
    for (const phase of ['Ready', 'Pending', 'Restoring', 'Failed'] as const) {
      const intruder = named('ck-a', replacement({ owner: { kind: 'ReplicaSet', uid: 'rs-9', name: 'intruder' } }));
      const d = decideAdmission(intruder, 'ml', [checkpoint('ck-a', { phase })], MATCH, SCHEDULING);
      expect(d).toMatchObject({ kind: 'answer', ops: [], result: 'skipped', count: 'refused' });
      expect(d.kind === 'answer' && d.warnings).toEqual([
        expect.stringMatching(/^hiatus.dev\/restore-from: ck-a not honoured \(another workload's checkpoint/),
      ]);
    }
  });

  it('never looks into another namespace for a name given by hand: no contract, no image, no claim', () => {
    const d = decideAdmission(
      named('ck-a'),
      'other-team',
      [checkpoint('ck-a', { image: 'registry.local/ck-a' })],
      MATCH,
      SCHEDULING,
    );
    // Only the marker (the filter then answers that restore-from lacks its constraints).
    expect(d).toMatchObject({
      kind: 'answer',
      why: 'checkpoint ck-a is not Ready in other-team: made schedulable as a restore pod',
    });
    expect(d.kind === 'answer' && d.ops.map((o) => o.path)).toEqual(['/spec/containers/0/resources']);
  });

  it('reports young claims no pod bound as contested, abandoned ones for a live read', () => {
    const young = checkpoint('ck-young', { phase: 'Restoring' });
    young.status!.restore = { claimedAt: iso(NOW - 1_000), podName: 'trainer-5c8f7-*' };
    const old = checkpoint('ck-old', { phase: 'Restoring' });
    old.status!.restore = { claimedAt: iso(NOW - 4_000), podName: 'trainer-5c8f7-*' };
    const bound = checkpoint('ck-bound', { phase: 'Restoring' });
    bound.status!.restore = { claimedAt: iso(NOW - 1_000), podName: 'trainer-5c8f7-abcde', podUID: 'uid-x' };
    expect(decideAdmission(replacement(), 'ml', [young, bound], MATCH, SCHEDULING)).toMatchObject({
      kind: 'contested',
      checkpoints: [young],
    });
    expect(decideAdmission(replacement(), 'ml', [young, old], MATCH, SCHEDULING)).toMatchObject({
      kind: 'recheck',
      checkpoints: [old],
    });
  });
});

describe('a claim whose pod never appears (the webhook shell)', () => {
  /** A webhook on a clock that moves only when it sleeps; `during` runs at each sleep. */
  function rig(o: { claimWaitMs: number; during?: (t: number, view: SnapshotView) => void }) {
    let t = NOW;
    const slept: number[] = [];
    const { store, view, webhook } = webhookOnMemory({
      claimWaitMs: o.claimWaitMs,
      now: () => t,
      sleep: async (ms) => {
        slept.push(ms);
        t += ms;
        o.during?.(t, view);
      },
    });
    return { store, view, webhook, slept, elapsed: () => t - NOW };
  }
  const forged = async (store: MemoryCheckpointStore, agoMs: number): Promise<Checkpoint> => {
    const c = checkpoint('ck-a', { phase: 'Restoring' });
    c.status!.restore = { claimedAt: iso(NOW - agoMs), podName: 'trainer-5c8f7-*' };
    return store.create(c);
  };
  it("gives the real replacement its checkpoint once the claim is old enough, waiting at most the claim's remaining time", async () => {
    const r = rig({ claimWaitMs: 3_500 });
    await forged(r.store, 500);
    const a = await r.webhook(review(replacement()));
    expect(restoresFrom(a.body)).toBe('ck-a');
    expect(r.elapsed()).toBeGreaterThan(2_500);
    expect(r.elapsed()).toBeLessThanOrEqual(2_600);
    expect(r.store.objects.get('ml/ck-a')!.status!.restore!.claimedAt).toBe(iso(NOW + r.elapsed()));
  });

  it('leaves the claim to its pod when that pod shows up while it waits', async () => {
    const r = rig({
      claimWaitMs: 3_500,
      during: (t, view) => {
        if (t - NOW >= 300) {
          view.addPod(podNaming('ck-a', 'trainer-5c8f7-q7x2z', 'uid-q7x2z'));
        }
      },
    });
    const before = await forged(r.store, 500);
    const a = await r.webhook(review(replacement()));
    expect(restoresFrom(a.body)).toBeUndefined();
    expect(a.why).toBe('every matching checkpoint was claimed by another pod');
    expect(r.elapsed()).toBeLessThan(500);
    expect(r.store.objects.get('ml/ck-a')!.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });

  it('does not wait when the claim is too young to come of age within its budget, and a pod carrying the name elsewhere is no holder', async () => {
    const r = rig({ claimWaitMs: 1_000 });
    await forged(r.store, 0);
    // A pod of another name that carries the annotation by hand does not hold the claim, but the claim is young.
    r.view.addPod(podNaming('ck-a', 'intruder', 'uid-i'));
    const a = await r.webhook(review(replacement()));
    expect(restoresFrom(a.body)).toBeUndefined();
    expect(r.slept).toEqual([]);
    expect(r.store.objects.get('ml/ck-a')!.status!.restore!.claimedAt).toBe(iso(NOW));
  });

  it("gives a claim's checkpoint images to one pod only, however late the claimed pod shows in the cache", async () => {
    // Pods A and B of one ReplicaSet, one checkpoint: A is claimed at t0 and shows in the cache
    // only at t0+4 s (a slow later webhook, etcd, the watch); B is admitted at t0+0.5 s.
    const image = (c: string) => `registry.example.com/hiatus/ml@sha256:${c.repeat(64)}`;
    const ck = checkpoint('ck-a');
    for (const [i, s] of ck.status!.containers!.entries()) {
      s.image = image(['a', 'b'][i]!);
      s.publication = { state: 'Published' };
    }
    let t = NOW;
    const { store, view, webhook } = webhookOnMemory({
      reclaimAfterMs: RECLAIM_AFTER_MS,
      claimWaitMs: CLAIM_WAIT_MS,
      publication: { images: 'registry.example.com/hiatus', waitMs: 0 },
      now: () => t,
      sleep: async (ms) => {
        t += ms;
        if (t - NOW >= 4_000 && !view.pod('uid-a')) view.addPod(podNaming('ck-a', 'trainer-5c8f7-aaaaa', 'uid-a'));
      },
    });
    await store.create(ck);
    const a = await webhook(review(replacement()));
    t = NOW + 500;
    const b = await webhook(review(replacement()));
    const images = (body: unknown) =>
      ((body as { response: { patch?: string } }).response.patch
        ? (decodePatch(body) as { path: string }[])
        : []
      ).filter((op) => op.path.endsWith('/image')).length;
    expect([images(a.body), images(b.body)]).toEqual([2, 0]);
    expect(restoresFrom(b.body)).toBeUndefined();
    // B is not held for A's claim: it answers at once.
    expect(t - NOW).toBe(500);
  });

  it('takes over an abandoned claim at once even while a pod that does not hold it carries its name', async () => {
    const r = rig({ claimWaitMs: 0 });
    await forged(r.store, 10_000);
    r.view.addPod(podNaming('ck-a', 'intruder', 'uid-i'));
    expect(restoresFrom((await r.webhook(review(replacement()))).body)).toBe('ck-a');
    expect(r.slept).toEqual([]);
  });
});
