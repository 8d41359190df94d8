// The claim token (src/restore/lifecycle.ts, holdsClaim) and the review's deadline
// (src/restore/webhook.ts, REVIEW_DEADLINE_MS): a claim not yet bound to its pod's UID is held only
// by the pod the webhook gave its token, never by a pod that carries the claimed name, its
// generateName prefix, or a token written by hand; and a claim the API server was too slow to
// write in time gives the pod no restore and goes back to Ready.
import { describe, expect, it } from '@jest/globals';
import { podFacts } from '../../src/cluster/facts.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { StoreUnavailable, type CallOptions } from '../../src/checkpoint/store.js';
import { claimHolder, claimTokenHash, holdsClaim, planLifecycle, podsByRestore } from '../../src/restore/lifecycle.js';
import { planHold, type PublicationOptions } from '../../src/restore/publication.js';
import { withoutForgedToken, type JsonPatchOp } from '../../src/restore/admission.js';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import {
  NOW,
  TOKEN,
  TOKEN_SHA256,
  checkpoint,
  decodePatch,
  iso,
  replacement,
  review,
  webhookOnMemory,
} from '../helpers/restore.js';

const CLAIM = 'hiatus.dev/restore-claim';
const times = { now: NOW, restoreTimeoutMs: 600_000, claimGraceMs: 90_000 };

/** A pod of the cache that names ck-a in hiatus.dev/restore-from, with these annotations besides. */
function carrier(name: string, annotations: Record<string, string> = {}) {
  return podFacts({
    metadata: {
      name,
      namespace: 'ml',
      uid: `uid-${name}`,
      annotations: { 'hiatus.dev/restore-from': 'ck-a', ...annotations },
    },
    spec: { containers: [{ name: 'main' }, { name: 'sidecar' }] },
  });
}

/** ck-a, claimed at admission for a pod created with generateName trainer-5c8f7-. */
function claimedRecord(tokenSHA256?: string): Checkpoint {
  const c = checkpoint('ck-a', { phase: 'Restoring' });
  c.status!.restore = {
    claimedAt: iso(NOW - 1_000),
    podName: 'trainer-5c8f7-*',
    ...(tokenSHA256 ? { tokenSHA256 } : {}),
  };
  return c;
}

describe('the claim token: which pod holds a claim not yet bound to a UID', () => {
  it('is the pod carrying the token, not one of the claimed generateName prefix or name without it', () => {
    const r = claimedRecord(TOKEN_SHA256).status!.restore!;
    expect(holdsClaim(carrier('trainer-5c8f7-evil'), r)).toBe(false);
    expect(holdsClaim(carrier('trainer-5c8f7-evil', { [CLAIM]: 'a-guess' }), r)).toBe(false);
    expect(holdsClaim(carrier('any-name', { [CLAIM]: TOKEN }), r)).toBe(true);
    const named = { ...r, podName: 'trainer-0' };
    expect(holdsClaim(carrier('trainer-0'), named)).toBe(false);
  });

  it('records only the SHA-256 of the token, which does not hold the claim when written as a token', () => {
    expect(TOKEN_SHA256).toMatch(/^[0-9a-f]{64}$/);
    expect(TOKEN_SHA256).not.toContain(TOKEN);
    const r = claimedRecord(TOKEN_SHA256).status!.restore!;
    expect(holdsClaim(carrier('p', { [CLAIM]: TOKEN_SHA256 }), r)).toBe(false);
  });

  it('binds the claim to the token carrier at the next lifecycle round, never to a pod of the claimed prefix', () => {
    const actions = planLifecycle(
      [claimedRecord(TOKEN_SHA256)],
      podsByRestore([carrier('trainer-5c8f7-evil'), carrier('trainer-5c8f7-x2k9d', { [CLAIM]: TOKEN })]),
      times,
    );
    expect(actions.map((a) => [a.kind, a.kind === 'bind' ? a.pod.name : undefined])).toEqual([
      ['bind', 'trainer-5c8f7-x2k9d'],
    ]);
  });

  it('binds nobody and fails the claim when its token is on two pods (one copied it past the webhook)', () => {
    const pods = [carrier('trainer-5c8f7-x2k9d', { [CLAIM]: TOKEN }), carrier('copy', { [CLAIM]: TOKEN })];
    expect(claimHolder(pods, claimedRecord(TOKEN_SHA256).status!.restore!)).toBe('ambiguous');
    const actions = planLifecycle([claimedRecord(TOKEN_SHA256)], podsByRestore(pods), times);
    expect(actions).toEqual([
      expect.objectContaining({ kind: 'fail', why: expect.stringContaining('carried by several pods') }),
    ]);
  });

  it('still recognises a claim written before tokens by its name prefix (an upgrade), until it is bound', () => {
    const r = claimedRecord().status!.restore!;
    expect(holdsClaim(carrier('trainer-5c8f7-x2k9d'), r)).toBe(true);
    expect(holdsClaim(carrier('other-x2k9d'), r)).toBe(false);
  });

  it("gives a token carrier the checkpoint's images only once the claim is bound to its UID", () => {
    const registry = 'registry.example:5000/hiatus';
    const o: PublicationOptions = { images: registry, waitMs: 180_000 };
    const c = claimedRecord(TOKEN_SHA256);
    for (const s of c.status!.containers!) {
      s.image = `${registry}/ml@sha256:${(s.name === 'main' ? 'a' : 'b').repeat(64)}`;
      s.publication = { state: 'Published' };
    }
    const contract = { 'hiatus.dev/restore-constraints': '{"node":"worker-7","sourceOnly":true}' };
    const held = carrier('trainer-5c8f7-x2k9d', { [CLAIM]: TOKEN, ...contract });
    expect(planHold(held, c, o, NOW).kind).toBe('wait');
    c.status!.restore!.podUID = held.uid;
    expect(planHold(held, c, o, NOW).kind).toBe('publish');
    delete c.status!.restore!.podUID;
    expect(planHold(carrier('trainer-5c8f7-evil', contract), c, o, NOW).kind).toBe('fresh');
  });
});

describe('the webhook and the claim token', () => {
  it('writes a token on the pod it admits and only its SHA-256 on the claim, replacing a token the pod arrived with', async () => {
    const { store, webhook } = webhookOnMemory({ claimToken: () => TOKEN });
    await store.create(checkpoint('ck-a'));
    const pod = replacement({ annotations: { [CLAIM]: 'copied-from-another-pod' } });
    const ops = decodePatch((await webhook(review(pod))).body) as { op: string; path: string; value?: unknown }[];
    expect(ops.filter((o) => o.path.endsWith('restore-claim'))).toEqual([
      { op: 'add', path: '/metadata/annotations/hiatus.dev~1restore-claim', value: TOKEN },
    ]);
    const claim = store.objects.get('ml/ck-a')!.status!.restore!;
    expect(claim).toEqual({ claimedAt: iso(NOW), podName: 'trainer-5c8f7-*', tokenSHA256: claimTokenHash(TOKEN) });
    expect(JSON.stringify(store.objects.get('ml/ck-a'))).not.toContain(TOKEN);
  });

  it('gives different pods different tokens', async () => {
    const { store, webhook } = webhookOnMemory();
    await store.create(checkpoint('ck-a'));
    await store.create(checkpoint('ck-b', { completedMinutesAgo: 10 }));
    const token = async () =>
      (decodePatch((await webhook(review(replacement()))).body) as { value: Record<string, string> }[])[0]!.value[
        CLAIM
      ];
    const [a, b] = [await token(), await token()];
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
  });

  it('removes a token from a pod it does not restore, and writes none on a dry run', async () => {
    const { store, webhook } = webhookOnMemory();
    const forged = replacement({ annotations: { [CLAIM]: TOKEN } });
    expect(decodePatch((await webhook(review(forged))).body)).toEqual([
      { op: 'remove', path: '/metadata/annotations/hiatus.dev~1restore-claim' },
    ]);
    await store.create(checkpoint('ck-a'));
    const dry = decodePatch((await webhook(review(forged, { dryRun: true }))).body) as { path: string }[];
    expect(dry[0]).toEqual({ op: 'remove', path: '/metadata/annotations/hiatus.dev~1restore-claim' });
    expect(dry.filter((o) => o.path.endsWith('restore-claim'))).toHaveLength(1);
    expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Ready');
  });

  it('leaves ops alone for a pod without a token', () => {
    const ops: JsonPatchOp[] = [{ op: 'add', path: '/spec/schedulerName', value: 'x' }];
    expect(withoutForgedToken(replacement(), ops)).toBe(ops);
  });
});

/** The in-memory store behind an API server that takes `delayMs` to answer each update. */
class SlowStore extends MemoryCheckpointStore {
  constructor(
    private readonly delayMs: number,
    private readonly honoursSignal: boolean,
  ) {
    super();
  }

  override async replace(obj: Checkpoint, opts: CallOptions = {}): Promise<Checkpoint> {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, this.delayMs);
      if (this.honoursSignal)
        opts.signal?.addEventListener('abort', () => {
          clearTimeout(t);
          reject(new StoreUnavailable(obj.metadata.name, 'aborted'));
        });
    });
    return super.replace(obj);
  }
}

describe("the webhook's deadline", () => {
  /** A webhook whose reviews have 100 ms, over an API server that takes delayMs per update. */
  const slow = (delayMs: number, honoursSignal: boolean) => {
    const store = new SlowStore(delayMs, honoursSignal);
    const w = webhookOnMemory({ store, deadlineMs: 100 });
    w.view.checkpointsByKey = store.objects;
    return { ...w, store };
  };
  const counted = async (m: ReturnType<typeof webhookOnMemory>['metrics']) =>
    Object.fromEntries((await m.restores.get()).values.map((v) => [v.labels.result, v.value]));

  it('answers without the restore once the claim outlasts it, and gives back the claim the API server wrote late', async () => {
    const { store, webhook, metrics } = slow(300, false);
    await store.create(checkpoint('ck-a'));
    const started = Date.now();
    const answer = await webhook(review(replacement()));
    expect(Date.now() - started).toBeLessThan(250);
    expect(answer.result).toBe('error');
    expect(answer.why).toContain('deadline');
    expect((answer.body as { response: object }).response).toEqual({ uid: expect.any(String), allowed: true });
    // The late write lands (Restoring, for no pod); the webhook's release puts the record back.
    await new Promise((r) => setTimeout(r, 800));
    expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Ready');
    expect(store.objects.get('ml/ck-a')!.status!.restore).toBeUndefined();
    expect(await counted(metrics)).toMatchObject({ claim_error: 1, released: 1 });
  });

  it('aborts the API call itself when the store honours the signal: no claim is written', async () => {
    const { store, webhook, metrics } = slow(10_000, true);
    await store.create(checkpoint('ck-a'));
    const started = Date.now();
    const answer = await webhook(review(replacement()));
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(answer.result).toBe('error');
    expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Ready');
    expect(await counted(metrics)).toMatchObject({ claim_error: 1 });
  });

  it('claims as before when the API server answers in time', async () => {
    const { store, webhook } = slow(10, true);
    await store.create(checkpoint('ck-a'));
    const answer = await webhook(review(replacement()));
    expect(answer.result).toBe('patched');
    expect(store.objects.get('ml/ck-a')!.status!.phase).toBe('Restoring');
  });
});
