// Which published images the agent deletes from the registry, pure (src/agent/imagePlan.ts).
import { describe, expect, it } from '@jest/globals';
import { planImageGc, type PublishedImage } from '../../src/agent/imagePlan.js';
import type { Checkpoint, CheckpointPhase } from '../../src/api/checkpoint.js';
import { agentRecord } from '../helpers/agentRecords.js';

const M = 60_000;
const POLICY = { graceMs: 10 * M, maxPerRound: 20 };
const digest = (c: string) => `sha256:${c.repeat(64)}`;

function record(name: string, phase: CheckpointPhase = 'Ready', image?: string): Checkpoint {
  return agentRecord(name, {
    phase,
    containers: [{ name: 'main', archivePath: '/d/a.tar', ...(image ? { image } : {}) }],
  });
}

function entry(name: string, extra: Partial<PublishedImage> = {}): PublishedImage {
  return {
    key: `uid-${name}.main`,
    registry: 'registry.test',
    repository: 'hiatus/ml',
    tag: `${name}.main`,
    checkpoint: `ml/${name}`,
    uid: `uid-${name}`,
    container: 'main',
    ...extra,
  };
}

describe('planImageGc', () => {
  it("keeps an image while its record exists, whatever the record's phase", () => {
    const phases: CheckpointPhase[] = ['Pending', 'Ready', 'Restoring', 'Restored', 'Failed'];
    const ledger = phases.map((p) => entry(p, { digest: digest('a'), goneSince: 0 }));
    const plan = planImageGc(
      ledger,
      phases.map((p) => record(p, p)),
      100 * M,
      POLICY,
    );
    expect(plan.deletions).toEqual([]);
    expect(plan.awaiting).toBe(0);
    // A record seen again clears the time it was missed.
    expect(plan.ledger.every((e) => e.goneSince === undefined)).toBe(true);
  });

  it('keeps an image another record names by digest, even once its own record is gone', () => {
    const plan = planImageGc(
      [entry('old', { digest: digest('b') })],
      [record('other', 'Restoring', `registry.test/hiatus/ml@${digest('b')}`)],
      100 * M,
      { ...POLICY, graceMs: 0 },
    );
    expect(plan.deletions).toEqual([]);
  });

  it('deletes an image only a grace period after it first found its record gone', () => {
    const first = planImageGc([entry('gone', { digest: digest('c') })], [], 100 * M, POLICY);
    expect(first.deletions).toEqual([]);
    expect(first.awaiting).toBe(1);
    expect(first.ledger).toEqual([entry('gone', { digest: digest('c'), goneSince: 100 * M })]);
    expect(planImageGc(first.ledger, [], 109 * M, POLICY).deletions).toEqual([]);
    const due = planImageGc(first.ledger, [], 110 * M, POLICY);
    expect(due.deletions).toEqual([entry('gone', { digest: digest('c'), goneSince: 100 * M })]);
  });

  it('deletes an image whose upload never completed (no digest yet), by its tag', () => {
    const plan = planImageGc([entry('half')], [], 5 * M, { ...POLICY, graceMs: 0 });
    expect(plan.deletions).toEqual([entry('half', { goneSince: 5 * M })]);
  });

  it('deletes at most maxPerRound images a round, longest gone first', () => {
    const ledger = [
      entry('c', { goneSince: 3 * M }),
      entry('a', { goneSince: 1 * M }),
      entry('live', { goneSince: 0 }),
      entry('b', { goneSince: 2 * M }),
    ];
    const plan = planImageGc(ledger, [record('live')], 60 * M, { graceMs: 10 * M, maxPerRound: 2 });
    expect(plan.deletions.map((e) => e.tag)).toEqual(['a.main', 'b.main']);
    expect(plan.awaiting).toBe(3);
  });
});
