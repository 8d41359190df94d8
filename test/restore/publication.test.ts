// Restore pods and the node agent's checkpoint images: which images a pod is given (only those
// the agent recorded as Published, by digest, in the namespace's repository), sourceOnly when not
// every container has one, the pull secret, the hold while the images are uploaded, and the
// release once they are published or not in time; from the webhook's answer to the pod the
// placement controller patches.
import { describe, expect, it } from '@jest/globals';
import { podFacts } from '../../src/cluster/facts.js';
import { GATE_RESTORE_PLACEMENT } from '../../src/api/keys.js';
import type { PatchOp, PodPlacementWriter, PodRef } from '../../src/cluster/podWriter.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { Checkpoint, ContainerPublication } from '../../src/api/checkpoint.js';
import { loadConfig } from '../../src/config/config.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import {
  admissionOptions,
  decideAdmission,
  restorePatch,
  type SchedulingOptions,
} from '../../src/restore/admission.js';
import { PlacementController } from '../../src/restore/placementController.js';
import { planLifecycle, podsByRestore } from '../../src/restore/lifecycle.js';
import { offeredImage, planHold, publicationOf, type PublicationOptions } from '../../src/restore/publication.js';
import { createWebhook } from '../../src/restore/webhook.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { node } from '../helpers/objects.js';
import {
  CONTRACT,
  CONTRACT_PUBLISHED,
  MARKER,
  NOW,
  PROFILE,
  checkpoint,
  contractOp,
  decodePatch,
  iso,
  replacement,
  review,
  webhookOnMemory,
  TOKEN,
} from '../helpers/restore.js';

const REGISTRY = 'registry.example.com:5000/hiatus';
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const MAIN_IMAGE = `${REGISTRY}/ml@${digest('a')}`;
const SIDECAR_IMAGE = `${REGISTRY}/ml@${digest('b')}`;
const SCHEDULING: SchedulingOptions = {
  schedulers: new Map([['default-scheduler', 'default-scheduler-restore']]),
  placementGate: false,
};
const PUBLISHING: PublicationOptions = { images: REGISTRY, waitMs: 180_000, pullSecret: 'hiatus-restore-pull' };
const MATCH = { now: NOW, maxAgeMs: 24 * 3600_000, reclaimAfterMs: 3_000 };
const PULL_SECRET = { op: 'add', path: '/spec/imagePullSecrets', value: [{ name: 'hiatus-restore-pull' }] };
const GATE = { op: 'add', path: '/spec/schedulingGates', value: [{ name: GATE_RESTORE_PLACEMENT }] };

type Pub = Partial<ContainerPublication> & { image?: string };

/** A Ready checkpoint (containers main and sidecar) with these publications recorded by the agent. */
function published(
  name: string,
  pubs: { main?: Pub; sidecar?: Pub },
  o: Parameters<typeof checkpoint>[1] = {},
): Checkpoint {
  const c = checkpoint(name, o);
  for (const s of c.status!.containers!) {
    const p = pubs[s.name as 'main' | 'sidecar'];
    if (!p) continue;
    const { image, ...publication } = p;
    s.publication = { state: 'Published', ...publication };
    if (image) s.image = image;
  }
  return c;
}
const both = { main: { image: MAIN_IMAGE }, sidecar: { image: SIDECAR_IMAGE } };

describe('which checkpoint images are offered', () => {
  const c = published('ck-a', both);
  const s = (image: string, state: ContainerPublication['state'] = 'Published') => ({
    name: 'main',
    archivePath: '/x.tar',
    image,
    publication: { state },
  });

  it("offers a Published, digest-pinned image of the namespace's repository under --checkpoint-images", () => {
    expect(offeredImage(c, s(MAIN_IMAGE), PUBLISHING)).toBe(MAIN_IMAGE);
    expect(offeredImage(c, s(MAIN_IMAGE), { ...PUBLISHING, images: `${REGISTRY}/` })).toBe(MAIN_IMAGE);
  });

  it.each([
    ['a tag instead of a digest', `${REGISTRY}/ml:ck-a.main`],
    ["another namespace's repository", `${REGISTRY}/other@${digest('a')}`],
    ['another registry', `evil.example.com/hiatus/ml@${digest('a')}`],
    ["a repository below the namespace's", `${REGISTRY}/ml/x@${digest('a')}`],
    ['a short digest', `${REGISTRY}/ml@sha256:abc`],
  ])('never offers %s', (_what, image) => {
    expect(offeredImage(c, s(image), PUBLISHING)).toBeUndefined();
  });

  it('never offers an image whose upload is not Published, nor any without --checkpoint-images', () => {
    expect(offeredImage(c, s(MAIN_IMAGE, 'Uploading'), PUBLISHING)).toBeUndefined();
    expect(offeredImage(c, { name: 'main', archivePath: '/x.tar', image: MAIN_IMAGE }, PUBLISHING)).toBeUndefined();
    expect(offeredImage(c, s(MAIN_IMAGE), { waitMs: 0 })).toBeUndefined();
  });

  it('says pending until every container of the pod has its image, failed as soon as one archive cannot be published', () => {
    const names = ['main', 'sidecar'];
    expect(publicationOf(published('ck', both), names, PUBLISHING)).toEqual({
      kind: 'published',
      images: new Map([
        ['main', MAIN_IMAGE],
        ['sidecar', SIDECAR_IMAGE],
      ]),
    });
    // A container the pod no longer has does not count.
    expect(publicationOf(published('ck', { main: { image: MAIN_IMAGE } }), ['main'], PUBLISHING)).toMatchObject({
      kind: 'published',
    });
    expect(
      publicationOf(
        published('ck', { main: { image: MAIN_IMAGE }, sidecar: { state: 'Uploading', message: 'registry down' } }),
        names,
        PUBLISHING,
      ),
    ).toEqual({
      kind: 'pending',
      why: "container sidecar's image is not published (Uploading: registry down)",
    });
    expect(publicationOf(checkpoint('ck'), names, PUBLISHING)).toEqual({
      kind: 'pending',
      why: "container main's image is not published (not started)",
    });
    const failed = published('ck', {
      main: { image: MAIN_IMAGE },
      sidecar: { state: 'Failed', reason: 'ArchiveTruncated', message: 'ends inside an entry' },
    });
    expect(publicationOf(failed, names, PUBLISHING)).toEqual({
      kind: 'failed',
      why: 'the archive of container sidecar cannot be published (ArchiveTruncated: ends inside an entry)',
    });
    // Without --checkpoint-images a missing archive still restores nowhere.
    expect(publicationOf(failed, names, { waitMs: 0 }).kind).toBe('failed');
    expect(publicationOf(published('ck', both), names, { waitMs: 0 })).toEqual({ kind: 'unpublished' });
  });
});

describe('what the webhook gives a restore pod', () => {
  it('every image published: the digest references, the pull secret, any compatible node (no sourceOnly), no hold', () => {
    expect(restorePatch(replacement(), published('ck-a', both), SCHEDULING, PUBLISHING)).toEqual([
      contractOp('ck-a', CONTRACT_PUBLISHED),
      { op: 'replace', path: '/spec/containers/0/image', value: MAIN_IMAGE },
      { op: 'replace', path: '/spec/containers/1/image', value: SIDECAR_IMAGE },
      PULL_SECRET,
      MARKER,
      PROFILE,
    ]);
  });

  it('one image still uploading: no image, sourceOnly, the pull secret, held by the restore-placement gate', () => {
    const c = published('ck-a', { main: { image: MAIN_IMAGE }, sidecar: { state: 'Uploading' } });
    expect(restorePatch(replacement(), c, SCHEDULING, PUBLISHING)).toEqual([
      contractOp('ck-a'),
      PULL_SECRET,
      MARKER,
      PROFILE,
      GATE,
    ]);
    // With gate placement as well, one gate.
    expect(
      restorePatch(replacement(), c, { ...SCHEDULING, placementGate: true }, PUBLISHING).filter((op) =>
        op.path.includes('schedulingGates'),
      ),
    ).toEqual([GATE]);
  });

  it('not held with --publication-wait 0, nor without --checkpoint-images: sourceOnly, nothing to pull', () => {
    const c = published('ck-a', { main: { image: MAIN_IMAGE }, sidecar: { state: 'Uploading' } });
    const sourceOnly = [contractOp('ck-a'), MARKER, PROFILE];
    expect(restorePatch(replacement(), c, SCHEDULING, { ...PUBLISHING, waitMs: 0 })).toEqual(sourceOnly);
    expect(
      restorePatch(replacement(), published('ck-a', both), SCHEDULING, {
        waitMs: 180_000,
        pullSecret: 'hiatus-restore-pull',
      }),
    ).toEqual(sourceOnly);
  });

  it('gates nothing when no replica may lift a gate (no patch on pods): sourceOnly, nothing to pull, as with --publication-wait 0', () => {
    const c = published('ck-a', { main: { image: MAIN_IMAGE }, sidecar: { state: 'Uploading' } });
    const gating = { ...SCHEDULING, placementGate: true };
    const may = admissionOptions(true, gating, PUBLISHING);
    expect(restorePatch(replacement(), c, may.scheduling, may.publication)).toContainEqual(GATE);
    const mayNot = admissionOptions(false, gating, PUBLISHING);
    expect(restorePatch(replacement(), c, mayNot.scheduling, mayNot.publication)).toEqual([
      contractOp('ck-a'),
      MARKER,
      PROFILE,
    ]);
    // Published images need no gate: given as ever.
    expect(restorePatch(replacement(), published('ck-a', both), mayNot.scheduling, mayNot.publication)).toContainEqual({
      op: 'replace',
      path: '/spec/containers/0/image',
      value: MAIN_IMAGE,
    });
  });

  it('leaves a restore pod ungated while the extender may not patch pods, and counts it', async () => {
    let liftable = false;
    const { store, webhook, metrics } = webhookOnMemory({
      placementGate: true,
      publication: PUBLISHING,
      gatesLiftable: () => liftable,
    });
    const gates = async () => {
      const ops = decodePatch((await webhook(review(replacement()))).body) as { path: string }[];
      return ops.filter((op) => op.path.includes('schedulingGates')).length;
    };
    await store.create(published('ck-a', { main: { image: MAIN_IMAGE }, sidecar: { state: 'Uploading' } }));
    expect(await gates()).toBe(0);
    const notGated = async () =>
      (await metrics.placements.get()).values.find((v) => v.labels.result === 'not_gated')?.value;
    expect(await notGated()).toBe(1);
    liftable = true;
    await store.create(published('ck-b', { main: { image: MAIN_IMAGE }, sidecar: { state: 'Uploading' } }));
    expect(await gates()).toBe(1);
    expect(await notGated()).toBe(1);
  });

  it("appends the pull secret to the pod's own, once", () => {
    const pod = replacement();
    (pod.spec as { imagePullSecrets?: { name: string }[] }).imagePullSecrets = [{ name: 'team-registry' }];
    expect(restorePatch(pod, published('ck-a', both), SCHEDULING, PUBLISHING)).toContainEqual({
      op: 'add',
      path: '/spec/imagePullSecrets/-',
      value: { name: 'hiatus-restore-pull' },
    });
    (pod.spec as { imagePullSecrets?: { name: string }[] }).imagePullSecrets = [{ name: 'hiatus-restore-pull' }];
    expect(
      restorePatch(pod, published('ck-a', both), SCHEDULING, PUBLISHING).some((op) =>
        op.path.includes('imagePullSecrets'),
      ),
    ).toBe(false);
  });

  it('does not offer a checkpoint whose archive is missing or truncated; warns a pod that named it', () => {
    const missing = published('ck-a', { main: { state: 'Failed', reason: 'ArchiveMissing', message: 'no such file' } });
    const d = decideAdmission(replacement(), 'ml', [missing], MATCH, SCHEDULING, PUBLISHING);
    expect(d).toMatchObject({
      kind: 'answer',
      ops: [],
      warnings: [],
      result: 'skipped',
      why: expect.stringMatching(/archive of checkpoint ck-a is missing or truncated/),
    });
    const named = decideAdmission(
      replacement({ annotations: { 'hiatus.dev/restore-from': 'ck-a' } }),
      'ml',
      [missing],
      MATCH,
      SCHEDULING,
      PUBLISHING,
    );
    expect(named.kind === 'answer' && named.warnings).toEqual([
      expect.stringMatching(/^hiatus.dev\/restore-from: ck-a not honoured \(the archive of checkpoint ck-a is missing/),
    ]);
    // An older checkpoint whose archive is fine is offered instead.
    const older = published('ck-old', both, { completedMinutesAgo: 30 });
    expect(decideAdmission(replacement(), 'ml', [missing, older], MATCH, SCHEDULING, PUBLISHING)).toMatchObject({
      kind: 'claim',
      checkpoints: [older],
    });
  });
});

/** The replacement as the API server stores it after the webhook's patch: named, with a UID. */
function admitted(pod: Pod, ops: { op: string; path: string; value?: unknown }[], name = 'trainer-5c8f7-x1'): Pod {
  const out = applyPatch(structuredClone(pod), ops);
  out.metadata = { ...out.metadata, name, uid: `uid-${name}`, namespace: 'ml' };
  return out;
}

/** RFC 6902 add/replace/remove/test, enough for the webhook's and the controller's patches. */
function applyPatch<T extends object>(doc: T, ops: readonly { op: string; path: string; value?: unknown }[]): T {
  for (const o of ops) {
    const keys = o.path
      .split('/')
      .slice(1)
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop()!;
    let parent = doc as Record<string, unknown>;
    for (const k of keys) parent = parent[k] as Record<string, unknown>;
    if (o.op === 'test') {
      if (JSON.stringify(parent[last]) !== JSON.stringify(o.value))
        throw Object.assign(new Error(`test ${o.path} failed`), { code: 422 });
    } else if (o.op === 'remove') {
      if (!(last in parent)) throw Object.assign(new Error(`remove ${o.path}: no such path`), { code: 422 });
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else Reflect.deleteProperty(parent, last);
    } else if (Array.isArray(parent) && last === '-') {
      parent.push(o.value);
    } else {
      parent[last] = o.value;
    }
  }
  return doc;
}

/** Applies the controller's patches to the pods of a view, as the API server would, and tells the controller. */
class PatchingWriter implements PodPlacementWriter {
  readonly calls: string[] = [];
  constructor(
    private readonly view: SnapshotView,
    private readonly pods: Map<string, Pod>,
  ) {}
  async nominate(pod: PodRef, n: string) {
    this.calls.push(`nominate ${pod.name} ${n}`);
  }
  async liftGate(pod: PodRef, gate: string, index: number, also: readonly PatchOp[] = []) {
    this.calls.push(`liftGate ${pod.name} ${also.map((o) => `${o.op} ${o.path}`).join(', ')}`);
    const live = this.pods.get(pod.uid)!;
    let next: Pod;
    try {
      next = applyPatch(structuredClone(live), [
        { op: 'test', path: `/spec/schedulingGates/${index}/name`, value: gate },
        ...also,
        { op: 'remove', path: `/spec/schedulingGates/${index}` },
      ]);
    } catch (e) {
      if ((e as { code?: number }).code === 422) return false;
      throw e;
    }
    this.pods.set(pod.uid, next);
    this.view.addPod(next);
    return true;
  }
}

describe('a restore pod held while its checkpoint is uploaded', () => {
  function setup(c: Checkpoint) {
    const view = new SnapshotView({
      nodes: [node('worker-7', { arch: 'amd64', zone: 'zone-a', features: ['AVX2'], runtime: 'cri-o://1.31.2' })],
    });
    const store = new MemoryCheckpointStore();
    view.checkpointsByKey = store.objects;
    const metrics = new Metrics({ defaultMetrics: false });
    const clock = { t: NOW };
    const pods = new Map<string, Pod>();
    const events: string[] = [];
    const writer = new PatchingWriter(view, pods);
    const controller = new PlacementController({
      view,
      writer,
      metrics,
      log: silentLogger,
      strict: false,
      nominateUngated: true,
      retryAfterMs: 10_000,
      sweepIntervalMs: 60_000,
      publication: PUBLISHING,
      event: async (_ns, pod, type, reason, message) => {
        events.push(`${pod} ${type} ${reason}: ${message}`);
      },
      now: () => clock.t,
    });
    const webhook = createWebhook({
      view,
      store,
      metrics,
      log: silentLogger,
      maxAgeMs: 24 * 3600_000,
      reclaimAfterMs: 3_000,
      restoreSchedulers: SCHEDULING.schedulers,
      publication: PUBLISHING,
      now: () => clock.t,
      claimToken: () => TOKEN,
    });
    const admit = async () => {
      await store.create(c);
      const pod = replacement();
      const answer = await webhook(review(pod));
      const created = admitted(pod, decodePatch(answer.body) as PatchOp[]);
      pods.set(created.metadata!.uid!, created);
      view.addPod(created);
      return created;
    };
    const counted = async () =>
      Object.fromEntries((await metrics.restores.get()).values.map((v) => [v.labels.result, v.value]));
    /** What the node agent does once the upload is verified. */
    const agentRecords = async (pubs: { main?: Pub; sidecar?: Pub }) => {
      const live = structuredClone(store.objects.get('ml/ck-a')!);
      const next = published('x', pubs);
      live.status!.containers = next.status!.containers;
      await store.replace(live);
    };
    const pod = () => pods.get('uid-trainer-5c8f7-x1')!;
    /** What the lifecycle loop does at its next round: binds the claim to the pod carrying its token. */
    const bind = async () => {
      const live = structuredClone(store.objects.get('ml/ck-a')!);
      const [action] = planLifecycle([live], podsByRestore(view.pods()), {
        now: clock.t,
        restoreTimeoutMs: 600_000,
        claimGraceMs: 90_000,
      });
      expect(action).toMatchObject({ kind: 'bind', pod: { uid: 'uid-trainer-5c8f7-x1' } });
      live.status!.restore!.podUID = 'uid-trainer-5c8f7-x1';
      await store.replace(live);
    };
    return { controller, writer, clock, events, admit, counted, agentRecords, pod, store, bind };
  }

  it('stays gated while uploading, then gets the digest references and loses sourceOnly with the gate, in one patch', async () => {
    const r = setup(published('ck-a', { main: { state: 'Uploading' }, sidecar: { state: 'Uploading' } }));
    await r.admit();
    expect(r.store.objects.get('ml/ck-a')!.status).toMatchObject({
      phase: 'Restoring',
      restore: { claimedAt: iso(NOW), podName: 'trainer-5c8f7-*' },
    });
    expect(r.pod().spec!.schedulingGates).toEqual([{ name: GATE_RESTORE_PLACEMENT }]);
    expect(r.pod().metadata!.annotations!['hiatus.dev/restore-constraints']).toBe(CONTRACT);
    expect((r.pod().spec as { imagePullSecrets?: unknown }).imagePullSecrets).toEqual([
      { name: 'hiatus-restore-pull' },
    ]);

    r.clock.t += 30_000;
    await r.controller.sweep();
    await r.agentRecords({ main: { image: MAIN_IMAGE }, sidecar: { state: 'Uploading' } });
    r.clock.t += 30_000;
    await r.controller.sweep();
    expect(r.writer.calls).toEqual([]);
    expect(r.pod().spec!.schedulingGates).toEqual([{ name: GATE_RESTORE_PLACEMENT }]);

    await r.agentRecords(both);
    r.clock.t += 10_000;
    await r.controller.sweep();
    // Published, but the images go only to the pod the claim is bound to, by UID.
    expect(r.writer.calls).toEqual([]);
    await r.bind();
    await r.controller.sweep();
    expect(r.writer.calls).toEqual([
      'nominate trainer-5c8f7-x1 worker-7',
      'liftGate trainer-5c8f7-x1 test /spec/containers/0/name, replace /spec/containers/0/image, test /spec/containers/1/name, replace /spec/containers/1/image, replace /metadata/annotations/hiatus.dev~1restore-constraints',
    ]);
    expect(r.pod().spec!.schedulingGates).toEqual([]);
    expect(r.pod().spec!.containers!.map((x) => x.image)).toEqual([MAIN_IMAGE, SIDECAR_IMAGE]);
    expect(r.pod().metadata!.annotations!['hiatus.dev/restore-constraints']).toBe(CONTRACT_PUBLISHED);
    expect(r.pod().metadata!.annotations!['hiatus.dev/restore-from']).toBe('ck-a');
    expect(await r.counted()).toMatchObject({ matched: 1, image_published: 1 });
    expect(r.events).toEqual([]);
  });

  it('starts fresh, with an event, when the upload outlasts --publication-wait', async () => {
    const r = setup(published('ck-a', { main: { state: 'Uploading', message: 'registry answered 503' } }));
    await r.admit();
    r.clock.t += PUBLISHING.waitMs - 1;
    await r.controller.sweep();
    expect(r.writer.calls).toEqual([]);
    r.clock.t += 1;
    await r.controller.sweep();
    expect(r.writer.calls).toEqual([
      'liftGate trainer-5c8f7-x1 remove /metadata/annotations/hiatus.dev~1restore-from, remove /metadata/annotations/hiatus.dev~1restore-constraints, remove /metadata/annotations/hiatus.dev~1restore-generation',
    ]);
    expect(r.pod().spec!.schedulingGates).toEqual([]);
    // The claim's token stays (deploy/webhook.yaml's policy refuses changing it): it holds no claim without the contract.
    expect(r.pod().metadata!.annotations).toEqual({ 'hiatus.dev/restore-claim': TOKEN });
    expect(r.pod().spec!.containers!.map((x) => x.image)).toEqual(['trainer:1', 'metrics:1']);
    expect(r.events).toEqual([
      "trainer-5c8f7-x1 Warning RestoreStartedFresh: checkpoint ck-a was not published within 180 s: container main's image is not published (Uploading: registry answered 503); starting without the checkpoint",
    ]);
    expect(await r.counted()).toMatchObject({ started_fresh: 1 });
  });

  it('starts fresh at once when the agent finds the archive truncated', async () => {
    const r = setup(published('ck-a', { main: { state: 'Uploading' }, sidecar: { state: 'Uploading' } }));
    await r.admit();
    await r.agentRecords({
      main: { state: 'Failed', reason: 'ArchiveTruncated', message: 'ends inside an entry' },
      sidecar: { state: 'Uploading' },
    });
    await r.controller.sweep();
    expect(r.pod().metadata!.annotations).toEqual({ 'hiatus.dev/restore-claim': TOKEN });
    expect(r.pod().spec!.schedulingGates).toEqual([]);
    expect(r.events).toEqual([
      expect.stringMatching(
        /RestoreStartedFresh: checkpoint ck-a: the archive of container main cannot be published \(ArchiveTruncated/,
      ),
    ]);
  });

  it('is released as any gated restore pod when it is not held for images (a contract without sourceOnly)', () => {
    const pod = podFacts(
      admitted(replacement(), restorePatch(replacement(), published('ck-a', both), SCHEDULING, PUBLISHING)),
    );
    expect(planHold({ ...pod, placementGate: 0 }, published('ck-a', both), PUBLISHING, NOW)).toEqual({
      kind: 'release',
    });
  });

  it('starts fresh when its claim was taken over by another pod', () => {
    const c = published('ck-a', { main: { state: 'Uploading' } });
    const pod = podFacts(admitted(replacement(), restorePatch(replacement(), c, SCHEDULING, PUBLISHING)));
    c.status!.phase = 'Restoring';
    c.status!.restore = { claimedAt: iso(NOW), podName: 'someone-else' };
    expect(planHold(pod, c, PUBLISHING, NOW)).toMatchObject({
      kind: 'fresh',
      why: 'checkpoint ck-a is not claimed for this pod any more',
    });
    expect(planHold(pod, undefined, PUBLISHING, NOW)).toMatchObject({
      kind: 'fresh',
      why: 'checkpoint ck-a no longer exists',
    });
  });
});

describe('the publication flags', () => {
  const base = ['--no-cluster', '--insecure-allow-unauthenticated-callers'];
  it('default to no images, a 3 minute hold and no pull secret', () => {
    const c = loadConfig(base, {});
    expect(c.checkpointImages).toBeUndefined();
    expect(c.publicationWaitMs).toBe(180_000);
    expect(c.restoreImagePullSecret).toBeUndefined();
  });
  it('take a registry prefix, a wait and a Secret name, and refuse what cannot be one', () => {
    const c = loadConfig(
      [
        ...base,
        '--checkpoint-images',
        'registry.example.com:5000/hiatus/',
        '--publication-wait',
        '0',
        '--restore-image-pull-secret',
        'hiatus-restore-pull',
      ],
      {},
    );
    expect([c.checkpointImages, c.publicationWaitMs, c.restoreImagePullSecret]).toEqual([
      'registry.example.com:5000/hiatus',
      0,
      'hiatus-restore-pull',
    ]);
    expect(() =>
      loadConfig(
        [
          ...base,
          '--checkpoint-images',
          'https://registry/x',
          '--restore-image-pull-secret',
          'Bad_Name',
          '--publication-wait',
          'soon',
        ],
        {},
      ),
    ).toThrow(
      /--checkpoint-images: "https:\/\/registry\/x" must be HOST\[:PORT\]\/PREFIX[\s\S]*--publication-wait: "soon"[\s\S]*--restore-image-pull-secret: "Bad_Name" is not a Secret name/,
    );
    expect(() =>
      loadConfig([...base, '--checkpoint-images', 'r.example/hiatus', '--publication-wait', '10m'], {}),
    ).toThrow(/--publication-wait must be shorter than --restore-timeout/);
  });
});
