import { describe, expect, it } from '@jest/globals';
import { podFacts } from '../../src/cluster/facts.js';
import { GATE_RESTORE_PLACEMENT } from '../../src/api/keys.js';
import type { PodPlacementWriter, PodRef } from '../../src/cluster/podWriter.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { planPlacement } from '../../src/restore/placement.js';
import { PlacementController } from '../../src/restore/placementController.js';
import { gatePatch, schedulingPatch } from '../../src/restore/admission.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { CONSTRAINTS, node, restorePod } from '../helpers/objects.js';

const GOOD = { arch: 'amd64', features: ['AVX2', 'SSE4_2'], runtime: 'cri-o://1.31.2', zone: 'zone-a' };

function gated(constraints: unknown = CONSTRAINTS, name = 'trainer-0'): Pod {
  const p = restorePod(constraints, name);
  p.spec!.schedulingGates = [{ name: 'example.com/quota' }, { name: GATE_RESTORE_PLACEMENT }];
  return p;
}

describe('the restore-placement gate the webhook adds', () => {
  const schedulers = new Map([['default-scheduler', 'default-scheduler-restore']]);
  it('is added after the marker and the profile when placement is on, appended to gates the pod has', () => {
    const p = restorePod();
    p.spec!.schedulerName = 'default-scheduler';
    expect(schedulingPatch(p, { schedulers, placementGate: true }).slice(-2)).toEqual([
      { op: 'add', path: '/spec/schedulerName', value: 'default-scheduler-restore' },
      { op: 'add', path: '/spec/schedulingGates', value: [{ name: GATE_RESTORE_PLACEMENT }] },
    ]);
    p.spec!.schedulingGates = [{ name: 'example.com/quota' }];
    expect(gatePatch(p)).toEqual([
      { op: 'add', path: '/spec/schedulingGates/-', value: { name: GATE_RESTORE_PLACEMENT } },
    ]);
  });
  it('is not added when placement is off, when the pod has it, or when the pod names its node (the API server refuses gates there)', () => {
    expect(
      schedulingPatch(restorePod(), { schedulers, placementGate: false }).some((op) =>
        op.path.includes('schedulingGates'),
      ),
    ).toBe(false);
    expect(gatePatch(gated())).toEqual([]);
    const pinned = restorePod();
    pinned.spec!.nodeName = 'n-holder';
    expect(gatePatch(pinned)).toEqual([]);
  });
});

describe('planPlacement', () => {
  const view = new SnapshotView({
    nodes: [node('n-holder', GOOD), node('n-arm', { ...GOOD, arch: 'arm64' }), node('n-bare', { zone: 'zone-a' })],
  });
  const plan = (constraints: unknown, strict = false) =>
    planPlacement(podFacts(gated(constraints)), (n) => view.node(n), strict);

  it('nominates the checkpoint node when it can restore the checkpoint', () => {
    expect(plan(CONSTRAINTS)).toEqual({
      nominate: 'n-holder',
      result: 'nominated',
      why: 'checkpoint ck-trainer-0 is on n-holder',
    });
  });
  it('nominates nothing when that node is gone, cannot restore it, or (strict) publishes nothing about itself', () => {
    expect(plan({ ...CONSTRAINTS, node: 'n-gone' })).toMatchObject({
      result: 'not_nominated',
      why: 'checkpoint node n-gone is not in the cluster',
    });
    expect(plan({ ...CONSTRAINTS, node: 'n-arm' })).toMatchObject({
      result: 'not_nominated',
      why: expect.stringMatching(/n-arm cannot restore it: node architecture arm64/),
    });
    expect(plan({ ...CONSTRAINTS, node: 'n-bare' }, true)).toMatchObject({
      result: 'not_nominated',
      why: expect.stringMatching(/strict mode/),
    });
    expect(plan({ ...CONSTRAINTS, node: 'n-bare' }, false)).toMatchObject({ nominate: 'n-bare' });
    expect(plan('{not json')).toMatchObject({ result: 'not_nominated', why: expect.stringMatching(/not valid JSON/) });
  });
});

type Call = [string, string, (string | number)?, number?];

/** A writer that records calls in order and fails as told. */
class FakeWriter implements PodPlacementWriter {
  calls: Call[] = [];
  fail: Partial<Record<'nominate' | 'liftGate', number>> = {};
  /** The gate is already gone (another replica lifted it): liftGate answers false. */
  alreadyLifted = false;
  private async maybeFail(what: 'nominate' | 'liftGate') {
    await new Promise((r) => setImmediate(r));
    const code = this.fail[what];
    if (code) throw Object.assign(new Error(`HTTP ${code}`), { code });
  }
  async nominate(pod: PodRef, n: string) {
    this.calls.push(['nominate', `${pod.namespace}/${pod.name}/${pod.uid}`, n]);
    await this.maybeFail('nominate');
  }
  async liftGate(pod: PodRef, gate: string, index: number) {
    this.calls.push(['liftGate', `${pod.namespace}/${pod.name}/${pod.uid}`, gate, index]);
    await this.maybeFail('liftGate');
    return !this.alreadyLifted;
  }
}

describe('PlacementController', () => {
  function setup(nominateUngated = true) {
    const view = new SnapshotView({ nodes: [node('n-holder', GOOD), node('n-arm', { ...GOOD, arch: 'arm64' })] });
    const writer = new FakeWriter();
    const metrics = new Metrics({ defaultMetrics: false });
    let now = 1_000_000;
    const forbidden: string[] = [];
    const c = new PlacementController({
      onForbidden: () => void forbidden.push('asked again'),
      view,
      writer,
      metrics,
      log: silentLogger,
      strict: false,
      nominateUngated,
      retryAfterMs: 10_000,
      sweepIntervalMs: 60_000,
      now: () => now,
    });
    const counted = async () =>
      Object.fromEntries((await metrics.placements.get()).values.map((v) => [v.labels.result, v.value]));
    return { view, writer, c, counted, forbidden, advance: (ms: number) => (now += ms) };
  }
  const settle = () => new Promise((r) => setTimeout(r, 5));
  const POD = 'ml/trainer-0/uid-trainer-0';

  it('sets the nominated node before it lifts the gate, once, however many events arrive meanwhile', async () => {
    const { view, writer, c, counted } = setup();
    c.start();
    view.addPod(gated());
    view.addPod(gated());
    await settle();
    view.addPod(gated()); // a late event that still shows the gate
    await settle();
    c.stop();
    expect(writer.calls).toEqual([
      ['nominate', POD, 'n-holder'],
      ['liftGate', POD, GATE_RESTORE_PLACEMENT, 1],
    ]);
    expect(await counted()).toEqual({ nominated: 1 });
  });

  it('lifts the gate without nominating when the checkpoint node cannot restore, and leaves other pods alone', async () => {
    const { view, writer, c, counted } = setup(false);
    c.start();
    view.addPod(gated({ ...CONSTRAINTS, node: 'n-arm' }));
    const plain = restorePod(CONSTRAINTS, 'not-gated');
    view.addPod(plain);
    const bound = gated(CONSTRAINTS, 'bound');
    bound.spec!.nodeName = 'n-holder';
    view.addPod(bound);
    await settle();
    c.stop();
    expect(writer.calls).toEqual([['liftGate', POD, GATE_RESTORE_PLACEMENT, 1]]);
    expect(await counted()).toEqual({ not_nominated: 1 });
  });

  it('still lifts the gate when the nomination cannot be written, and stops when the pod is gone', async () => {
    const { writer, c, counted } = setup();
    writer.fail.nominate = 500;
    await c.onPod(podFacts(gated()));
    expect(writer.calls.map((x) => x[0])).toEqual(['nominate', 'liftGate']);
    expect(await counted()).toEqual({ error: 1, not_nominated: 1 });
    const gone = setup();
    gone.writer.fail.nominate = 404;
    await gone.c.onPod(podFacts(gated()));
    expect(gone.writer.calls.map((x) => x[0])).toEqual(['nominate']);
    expect(await gone.counted()).toEqual({});
  });

  it('counts a release the API server refused (403: no patch on pods) apart from other failures, and has the permission asked again', async () => {
    const { writer, c, counted, forbidden } = setup();
    writer.fail.liftGate = 403;
    await c.onPod(podFacts(gated()));
    expect(writer.calls.map((x) => x[0])).toEqual(['nominate', 'liftGate']);
    expect(await counted()).toEqual({ forbidden: 1 });
    expect(forbidden).toEqual(['asked again']);
  });

  it('counts nothing when another replica released the pod first, even if its own nomination failed meanwhile', async () => {
    const { writer, c, counted } = setup();
    writer.fail.nominate = 422; // forbidden: the pod is bound already
    writer.alreadyLifted = true;
    await c.onPod(podFacts(gated()));
    expect(writer.calls.map((x) => x[0])).toEqual(['nominate', 'liftGate']);
    expect(await counted()).toEqual({});
  });

  it('waits for the caches to sync before judging the checkpoint node, and places the pod from the sweep then', async () => {
    const { view, writer, c, counted } = setup();
    view.isSynced = false;
    c.start();
    view.addPod(gated());
    await settle();
    expect(writer.calls).toEqual([]);
    view.isSynced = true;
    await c.sweep();
    c.stop();
    expect(writer.calls.map((x) => x[0])).toEqual(['nominate', 'liftGate']);
    expect(await counted()).toEqual({ nominated: 1 });
  });

  it('retries a failed release from the sweep once the retry delay has passed, not before', async () => {
    const { view, writer, c, counted, advance } = setup();
    writer.fail.liftGate = 503;
    view.addPod(gated());
    await c.sweep();
    expect(writer.calls.length).toBe(2);
    expect(await counted()).toEqual({ error: 1 });
    writer.fail.liftGate = undefined;
    advance(5_000);
    await c.sweep();
    expect(writer.calls.length).toBe(2);
    advance(5_000);
    await c.sweep();
    expect(writer.calls.slice(2)).toEqual([
      ['nominate', POD, 'n-holder'],
      ['liftGate', POD, GATE_RESTORE_PLACEMENT, 1],
    ]);
    expect(await counted()).toEqual({ error: 1, nominated: 1 });
  });

  describe('ungated restore pods (--restore-placement nominate)', () => {
    const fresh = (name = 'trainer-0', constraints: unknown = CONSTRAINTS) => restorePod(constraints, name);
    const FRESH = 'ml/trainer-0/uid-trainer-0';

    it('nominates a new restore pod once, with one write and no gate to lift', async () => {
      const { view, writer, c, counted } = setup();
      c.start();
      view.addPod(fresh());
      await settle();
      const after = fresh();
      after.status = { nominatedNodeName: 'n-holder' };
      view.addPod(after); // our own write coming back
      view.addPod(fresh()); // a late event from before it
      await settle();
      c.stop();
      expect(writer.calls).toEqual([['nominate', FRESH, 'n-holder']]);
      expect(await counted()).toEqual({ nominated: 1 });
    });

    it('leaves pods kube-scheduler has tried or nominated, pods without a contract, and everything under score', async () => {
      const { view, writer, c, counted } = setup();
      c.start();
      const tried = fresh('tried');
      tried.status = { conditions: [{ type: 'PodScheduled', status: 'False' }] };
      view.addPod(tried);
      const preempting = fresh('preempting');
      preempting.status = { nominatedNodeName: 'n-other' };
      view.addPod(preempting);
      const plain = fresh('plain');
      plain.metadata!.annotations = {};
      view.addPod(plain);
      await settle();
      c.stop();
      const score = setup(false);
      score.c.start();
      score.view.addPod(fresh());
      await settle();
      score.c.stop();
      expect([...writer.calls, ...score.writer.calls]).toEqual([]);
      expect({ ...(await counted()), ...(await score.counted()) }).toEqual({});
    });

    it('counts a nomination refused because the pod is bound already as late, and an unusable checkpoint node as not_nominated', async () => {
      const { writer, c, counted } = setup();
      writer.fail.nominate = 422;
      await c.onPod(podFacts(fresh()));
      await c.onPod(podFacts(fresh('elsewhere', { ...CONSTRAINTS, node: 'n-arm' })));
      expect(writer.calls).toEqual([['nominate', FRESH, 'n-holder']]);
      expect(await counted()).toEqual({ late: 1, not_nominated: 1 });
    });
  });
});
