import { describe, expect, it } from '@jest/globals';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import type { NodeFacts, PodFacts } from '../../src/cluster/facts.js';
import * as record from '../../src/checkpoint/record.js';
import { DEFAULT_RESOURCE_POLICY } from '../../src/scheduling/resources.js';

const T0 = Date.parse('2026-05-01T10:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

const VICTIM: PodFacts = {
  uid: 'uid-trainer-0',
  name: 'trainer-0',
  namespace: 'ml',
  nodeName: 'n1',
  priority: 100,
  deleting: false,
  containers: ['main', 'sidecar'],
  memoryBytes: 2 ** 30,
  extendedResources: {},
  annotations: {},
  owner: { kind: 'StatefulSet', name: 'trainer', uid: 'uid-sts' },
  index: 0,
  scheduleAttempted: true,
};
const NODE: NodeFacts = {
  name: 'n1',
  resourceVersion: '7',
  zone: 'zone-a',
  kernel: '6.8.0',
  capability: {
    arch: 'amd64',
    cpuFeatures: new Set(['SSE4_2', 'AVX2']),
    runtime: { family: 'cri-o', version: '1.31.2' },
    gpu: { product: 'NVIDIA-H200', driverMajor: 580, checkpoint: true },
  },
};
const PREEMPTOR = { namespace: 'ml', name: 'urgent', uid: 'uid-urgent' };
const TERMS: record.ClaimTerms = {
  identity: 'replica-a',
  now: T0,
  claimTtlMs: 15_000,
  resources: DEFAULT_RESOURCE_POLICY,
};
const request = (o: Partial<record.ClaimRequest> = {}): record.ClaimRequest => ({
  name: 'trainer-0-0123456789ab',
  victim: VICTIM,
  node: NODE,
  preemptor: PREEMPTOR,
  link: { generation: 1 },
  ...o,
});

describe('the claim record', () => {
  it("records a preemption's checkpoint as Pending, held by this replica for the claim TTL", () => {
    const c = record.claimRecord(request({ candidateVictims: ['uid-a', 'uid-trainer-0', 'uid-a'] }), TERMS);
    expect(c).toEqual({
      apiVersion: 'hiatus.dev/v1alpha1',
      kind: 'Checkpoint',
      metadata: {
        name: 'trainer-0-0123456789ab',
        namespace: 'ml',
        labels: {
          'hiatus.dev/source-pod-uid': 'uid-trainer-0',
          'hiatus.dev/preemptor-uid': 'uid-urgent',
          'hiatus.dev/owner-uid': 'uid-sts',
        },
        annotations: { [record.ANNOTATION_PREEMPTION_VICTIMS]: 'uid-a,uid-trainer-0' },
      },
      spec: {
        reason: 'Preemption',
        preemptor: PREEMPTOR,
        source: {
          pod: { namespace: 'ml', name: 'trainer-0', uid: 'uid-trainer-0' },
          nodeName: 'n1',
          priority: 100,
          memoryBytes: 2 ** 30,
          owner: { kind: 'StatefulSet', name: 'trainer', uid: 'uid-sts' },
          index: 0,
        },
        containers: ['main', 'sidecar'],
        generation: 1,
        restoreConstraints: {
          node: 'n1',
          arch: 'amd64',
          cpuFeatures: ['AVX2', 'SSE4_2'],
          runtime: 'cri-o://1.31.2',
          zone: 'zone-a',
          kernel: '6.8.0',
        },
      },
      status: { phase: 'Pending', claimedBy: 'replica-a', claimExpiresAt: iso(T0 + 15_000), startTime: iso(T0) },
    });
  });

  it('records a Manual checkpoint without a preemptor, and the chain link it is given', () => {
    const c = record.claimRecord(
      request({ preemptor: undefined, link: { generation: 3, restoredFrom: 'trainer-0-old' } }),
      TERMS,
    );
    expect(c.spec.reason).toBe('Manual');
    expect(c.spec).not.toHaveProperty('preemptor');
    expect(c.metadata.labels).not.toHaveProperty('hiatus.dev/preemptor-uid');
    expect(c.metadata).not.toHaveProperty('annotations');
    expect(c.spec).toMatchObject({ generation: 3, restoredFrom: 'trainer-0-old' });
  });

  it("binds a GPU pod's checkpoint to the node's GPU product and driver, and only a GPU pod's", () => {
    const gpuPod = { ...VICTIM, extendedResources: { 'nvidia.com/gpu': 1 } };
    expect(record.claimRecord(request({ victim: gpuPod }), TERMS).spec.restoreConstraints).toMatchObject({
      gpuProduct: 'NVIDIA-H200',
      gpuDriverMajor: 580,
    });
    expect(record.claimRecord(request(), TERMS).spec.restoreConstraints).not.toHaveProperty('gpuProduct');
  });

  it('leaves out what the node does not say (unknown arch, runtime, zone, kernel)', () => {
    const bare: NodeFacts = { name: 'n2', resourceVersion: '1', capability: { cpuFeatures: null } };
    expect(record.claimRecord(request({ node: bare }), TERMS).spec.restoreConstraints).toEqual({
      node: 'n2',
      arch: '',
      cpuFeatures: [],
      runtime: '',
    });
  });

  it("taking over an existing record, carries its resourceVersion so that only one replica's write succeeds", () => {
    const existing = record.claimRecord(request(), TERMS);
    existing.metadata.resourceVersion = '42';
    expect(record.claimRecord(request(), { ...TERMS, identity: 'replica-b' }, existing).metadata).toMatchObject({
      resourceVersion: '42',
    });
    expect(record.claimRecord(request(), TERMS).metadata).not.toHaveProperty('resourceVersion');
  });

  it('renews the claim only: a later expiry on a copy', () => {
    const claim = record.claimRecord(request(), TERMS);
    const renewed = record.renewedClaim(claim, T0 + 5_000, 15_000);
    expect(renewed.status).toEqual({ ...claim.status, claimExpiresAt: iso(T0 + 20_000) });
    expect(claim.status!.claimExpiresAt).toBe(iso(T0 + 15_000));
  });
});

describe('the outcome record', () => {
  const claim = record.claimRecord(request(), TERMS);
  const archives = [
    { name: 'main', archivePath: '/var/lib/kubelet/checkpoints/a.tar' },
    { name: 'sidecar', archivePath: '/var/lib/kubelet/checkpoints/b.tar' },
  ];

  it('is Ready with the archives, completed, no longer claimed until any time', () => {
    const c = record.outcomeRecord(claim, { containers: archives }, T0 + 8_000);
    expect(c.status).toEqual({
      phase: 'Ready',
      claimedBy: 'replica-a',
      startTime: iso(T0),
      completionTime: iso(T0 + 8_000),
      containers: archives,
    });
    expect(claim.status!.phase).toBe('Pending');
  });

  it("is Failed with the kubelet's message", () => {
    const c = record.outcomeRecord(claim, { failure: 'kubelet n1: 500 CRIU dump failed' }, T0 + 2_000);
    expect(c.status).toEqual({
      phase: 'Failed',
      claimedBy: 'replica-a',
      startTime: iso(T0),
      completionTime: iso(T0 + 2_000),
      message: 'kubelet n1: 500 CRIU dump failed',
    });
  });

  it('names the native sidecars it leaves out as a Ready message; a failure is the message of a Failed one', () => {
    const meshed = { ...VICTIM, sidecars: ['istio-proxy', 'log-shipper'] };
    const note = record.sidecarsNotCheckpointed(meshed);
    expect(note).toBe(
      'native sidecar(s) istio-proxy, log-shipper not checkpointed: they start from their images on restore',
    );
    expect(record.sidecarsNotCheckpointed(VICTIM)).toBeUndefined();
    expect(record.outcomeRecord(claim, { containers: archives, note }, T0).status!.message).toBe(note);
    expect(record.outcomeRecord(claim, { failure: 'kubelet n1: 500', note }, T0).status!.message).toBe(
      'kubelet n1: 500',
    );
  });

  it('holds an archive for every container only when each has a path', () => {
    expect(record.archivesEvery(record.outcomeRecord(claim, { containers: archives }, T0), VICTIM.containers)).toBe(
      true,
    );
    expect(
      record.archivesEvery(
        record.outcomeRecord(claim, { containers: [archives[0]!, { name: 'sidecar', archivePath: '' }] }, T0),
        VICTIM.containers,
      ),
    ).toBe(false);
    expect(record.archivesEvery(claim, VICTIM.containers)).toBe(false);
  });

  it("is written over a record only while that record is still this replica's unfinished claim", () => {
    expect(record.heldBy(claim, 'replica-a')).toBe(true);
    expect(record.heldBy(claim, 'replica-b')).toBe(false);
    expect(record.heldBy(record.outcomeRecord(claim, { containers: archives }, T0), 'replica-a')).toBe(false);
  });
});

describe('the state a record says its checkpoint is in', () => {
  const AGES = { maxAgeMs: 600_000, retryFailedAfterMs: 300_000 };
  const claim = record.claimRecord(request(), TERMS);
  const ready = record.outcomeRecord(claim, { containers: [] }, T0);
  const failed = record.outcomeRecord(claim, { failure: 'x' }, T0);

  it('ready while fresh, none once older than the maximum age', () => {
    expect(record.recordState(ready, T0 + 600_000, AGES)).toBe('ready');
    expect(record.recordState(ready, T0 + 600_001, AGES)).toBe('none');
  });

  it('pending while the claim holds, none once it expired', () => {
    expect(record.recordState(claim, T0 + 14_999, AGES)).toBe('pending');
    expect(record.recordState(claim, T0 + 15_000, AGES)).toBe('none');
  });

  it('failed until it may be retried', () => {
    expect(record.recordState(failed, T0 + 299_999, AGES)).toBe('failed');
    expect(record.recordState(failed, T0 + 300_000, AGES)).toBe('none');
  });

  it('none for a record without a status or in a restore phase', () => {
    const { status: _, ...noStatus } = claim;
    expect(record.recordState(noStatus as Checkpoint, T0, AGES)).toBe('none');
    expect(record.recordState({ ...ready, status: { ...ready.status!, phase: 'Restored' } }, T0, AGES)).toBe('none');
  });
});

describe("whether another preemption's Ready record may evict the victim", () => {
  const AGES = { maxAgeMs: 600_000, retryFailedAfterMs: 300_000 };
  const done = (tookMs: number): Checkpoint => {
    const r = record.outcomeRecord(record.claimRecord(request(), TERMS), { containers: [] }, T0);
    return { ...r, status: { ...r.status!, startTime: iso(T0 - tookMs), completionTime: iso(T0) } };
  };

  it('shares a record for as long as the checkpoint took, and at least 5 s', () => {
    expect(record.freshToShare(done(1_000), T0 + 5_000, AGES)).toBe(true);
    expect(record.freshToShare(done(1_000), T0 + 5_001, AGES)).toBe(false);
    expect(record.freshToShare(done(40_000), T0 + 40_000, AGES)).toBe(true);
    expect(record.freshToShare(done(40_000), T0 + 40_001, AGES)).toBe(false);
  });

  it('never shares what recordState would not call ready', () => {
    expect(record.freshToShare(done(900_000), T0 + 600_001, AGES)).toBe(false);
    const failed = record.outcomeRecord(record.claimRecord(request(), TERMS), { failure: 'x' }, T0);
    expect(record.freshToShare(failed, T0, AGES)).toBe(false);
  });

  it("counts a preemption's own Ready record only when taken since it began, or fresh enough to share", () => {
    // Completed after the preemption began: it stands for the whole maximum age.
    expect(record.ownRecordState(done(1_000), T0 + 600_000, AGES, T0 - 1)).toBe('ready');
    // Left by an earlier attempt: only as long as another preemption's record would be shared.
    expect(record.ownRecordState(done(1_000), T0 + 5_000, AGES, T0 + 4_000)).toBe('ready');
    expect(record.ownRecordState(done(1_000), T0 + 180_000, AGES, T0 + 170_000)).toBe('none');
    const failed = record.outcomeRecord(record.claimRecord(request(), TERMS), { failure: 'x' }, T0);
    expect(record.ownRecordState(failed, T0 + 1_000, AGES, T0 + 500)).toBe('failed');
  });
});

describe("a claim's turn among the claims on one pod", () => {
  const AGES = { maxAgeMs: 600_000, retryFailedAfterMs: 300_000 };
  const claim = (name: string, identity: string, rv: string, o: Partial<Checkpoint['metadata']> = {}) => {
    const c = record.claimRecord(request({ name }), { ...TERMS, identity });
    c.metadata = { ...c.metadata, resourceVersion: rv, uid: `uid-${name}`, ...o };
    return c;
  };
  const turn = (own: Checkpoint, records: Checkpoint[], mayShare = true) =>
    record.victimLock({
      own,
      identity: 'replica-a',
      records,
      containers: VICTIM.containers,
      mayShare,
      now: T0,
      ages: AGES,
    });

  it('orders resourceVersions as integers of any length, and refuses anything else', () => {
    expect(record.compareResourceVersions('99', '100')).toBeLessThan(0);
    expect(record.compareResourceVersions('100', '99')).toBeGreaterThan(0);
    expect(record.compareResourceVersions('12345678901234567890', '12345678901234567891')).toBeLessThan(0);
    expect(record.compareResourceVersions('7', '7')).toBe(0);
    for (const bad of ['', '0', '007', 'abc', undefined]) expect(record.compareResourceVersions(bad, '7')).toBeNaN();
  });

  it('waits for a live claim written before its own, and goes ahead of one written after', () => {
    const mine = claim('mine', 'replica-a', '100');
    const earlier = claim('earlier', 'replica-b', '99');
    const later = claim('later', 'replica-b', '101');
    expect(turn(mine, [mine, earlier, later])).toEqual({ kind: 'wait', record: earlier });
    expect(turn(mine, [mine, later])).toEqual({ kind: 'dump' });
  });

  it("orders by the revision a claim was written at, not by a renewal's, nor by creationTimestamp", () => {
    const mine = claim('mine', 'replica-a', '100', { creationTimestamp: iso(T0) });
    // Claimed at 90, renewed since at 120, and created in a later second by a slower API server clock.
    const renewed = claim('renewed', 'replica-b', '120', { creationTimestamp: iso(T0 + 1_000) });
    renewed.status!.claimRevision = '90';
    expect(turn(mine, [mine, renewed])).toEqual({ kind: 'wait', record: renewed });
  });

  it('falls back to creationTimestamp then name where revisions do not compare', () => {
    const mine = claim('b-mine', 'replica-a', 'x2', { creationTimestamp: iso(T0) });
    const sameSecond = claim('a-other', 'replica-b', 'x1', { creationTimestamp: iso(T0) });
    expect(turn(mine, [mine, sameSecond])).toEqual({ kind: 'wait', record: sameSecond });
  });

  it('ignores a lapsed or finished claim, and shares a fresh Ready record of every container', () => {
    const mine = claim('mine', 'replica-a', '100');
    const lapsed = claim('lapsed', 'replica-b', '50');
    lapsed.status!.claimExpiresAt = iso(T0 - 1);
    expect(turn(mine, [mine, lapsed])).toEqual({ kind: 'dump' });
    const ready = record.outcomeRecord(
      claim('ready', 'replica-b', '60'),
      { containers: VICTIM.containers.map((name) => ({ name, archivePath: `/ck/${name}.tar` })) },
      T0 - 1_000,
    );
    expect(turn(mine, [mine, ready])).toEqual({ kind: 'share', record: ready });
    // A Manual checkpoint takes its own.
    expect(turn(mine, [mine, ready], false)).toEqual({ kind: 'dump' });
    // Not every container archived: not shared.
    const partial = structuredClone(ready);
    partial.status!.containers = partial.status!.containers!.slice(0, 1);
    expect(turn(mine, [mine, partial])).toEqual({ kind: 'dump' });
  });

  it('knows its claim is lost when the record is gone or held by another replica', () => {
    const mine = claim('mine', 'replica-a', '100');
    expect(turn(mine, [])).toEqual({ kind: 'lost' });
    const takenOver = claim('mine', 'replica-b', '140');
    expect(turn(mine, [takenOver])).toEqual({ kind: 'lost' });
  });
});
