import { afterEach, describe, expect, it } from '@jest/globals';
import { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import { podFacts, type PodFacts } from '../../src/cluster/facts.js';
import type { LivePod, PodRef, PreemptionWriter } from '../../src/cluster/podWriter.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { PreemptionCompleter } from '../../src/preemption/completer.js';
import {
  candidateOrder,
  contendedNodes,
  nextCompletionStep,
  type CompletionSnapshot,
  type PreemptionIntent,
} from '../../src/preemption/completion.js';
import type { CheckpointState } from '../../src/scheduling/candidates.js';
import type { Pod } from '../../src/api/kubernetes.js';
import { KubeletSimulator, simPodFromV1Pod } from '../../testing/kubelet/kubelet.js';
import { CheckpointExecutor } from '../../src/checkpoint/executor.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { testCompleter, testExecutor } from '../helpers/executor.js';
import { node, plainPod, victim } from '../helpers/objects.js';

const NOW = Date.parse('2026-11-27T12:00:00Z');
const PREEMPTOR = { namespace: 'default', name: 'urgent', uid: 'uid-urgent' };

function pendingPreemptor(o: { nodeName?: string; deleting?: boolean } = {}): PodFacts {
  const p = plainPod('urgent');
  p.spec!.priority = 1000;
  if (o.nodeName) p.spec!.nodeName = o.nodeName;
  if (o.deleting) p.metadata!.deletionTimestamp = new Date(NOW).toISOString();
  return podFacts(p);
}

const intent = (candidates: Record<string, string[]>, index = 0): PreemptionIntent => ({
  preemptor: PREEMPTOR,
  priority: 1000,
  candidates: Object.entries(candidates).map(([n, victims]) => ({ node: n, victims, numPDBViolations: 0 })),
  index,
  expiresAt: NOW + 60_000,
});

function snapshot(
  pods: Pod[],
  states: Record<string, CheckpointState> = {},
  preemptor: PodFacts | null = pendingPreemptor(),
): CompletionSnapshot {
  const byUid = new Map(pods.map((p) => [p.metadata!.uid!, podFacts(p)]));
  return {
    preemptor: preemptor ?? undefined,
    victim: (uid) => byUid.get(uid),
    priorityClass: () => undefined,
    checkpointState: (v) => states[v.uid] ?? 'none',
    defaultPolicy: 'Never',
    now: NOW,
    preemptorPriority: 1000,
  };
}

describe('the next step of a preemption hiatus completes (pure)', () => {
  const a = victim('a', 'n1', { policy: 'Required' });
  const b = victim('b', 'n2', { policy: 'Required' });
  const two = intent({ n1: ['uid-a'], n2: ['uid-b'] });

  it('starts the checkpoints of the current candidate that have none', () => {
    const step = nextCompletionStep(two, snapshot([a, b]));
    expect(step.kind).toBe('checkpoint');
    expect(step.kind === 'checkpoint' && step.work.map((v) => v.uid)).toEqual(['uid-a']);
    expect(step.kind === 'checkpoint' && step.index).toBe(0);
  });

  it('waits while a checkpoint runs, here or on another replica', () => {
    expect(nextCompletionStep(two, snapshot([a, b], { 'uid-a': 'pending' })).kind).toBe('wait');
  });

  it("names the victims whose checkpoint is recorded while another's runs: they may go at once", () => {
    const c = victim('c', 'n1', { policy: 'BestEffort' });
    const never = victim('web', 'n1', { policy: 'Never' });
    const shared = intent({ n1: ['uid-a', 'uid-c', 'uid-web'] });
    const step = nextCompletionStep(shared, snapshot([a, c, never], { 'uid-a': 'ready', 'uid-c': 'pending' }));
    expect(step.kind).toBe('wait');
    // Not the victim that goes without a checkpoint: its work is lost either way, and it stays
    // should the candidate be dropped.
    expect(step.kind === 'wait' && step.release.map((v) => v.uid)).toEqual(['uid-a']);
    const none = nextCompletionStep(shared, snapshot([a, c, never], { 'uid-a': 'pending', 'uid-c': 'pending' }));
    expect(none.kind === 'wait' && none.release).toEqual([]);
  });

  it('releases the candidate once every checkpoint is ready', () => {
    const step = nextCompletionStep(two, snapshot([a, b], { 'uid-a': 'ready' }));
    expect(step.kind === 'release' && step.candidate.node).toBe('n1');
  });

  it('moves to the next candidate when a Required checkpoint failed', () => {
    const step = nextCompletionStep(two, snapshot([a, b], { 'uid-a': 'failed' }));
    expect(step.kind).toBe('checkpoint');
    expect(step.kind === 'checkpoint' && [step.index, step.candidate.node]).toEqual([1, 'n2']);
  });

  it('moves on to a candidate no other preemption in progress is committed to first, a contended one last', () => {
    const c = victim('c', 'n3', { policy: 'Required' });
    const three = intent({ n1: ['uid-a'], n2: ['uid-b'], n3: ['uid-c'] });
    const failed = { 'uid-a': 'failed' } as const;
    const moved = (contended: string[]) => {
      const step = nextCompletionStep(three, { ...snapshot([a, b, c], failed), contended: new Set(contended) });
      return step.kind === 'checkpoint' ? step.candidate.node : step.kind;
    };
    expect(moved([])).toBe('n2');
    expect(moved(['n2'])).toBe('n3');
    expect(moved(['n2', 'n3'])).toBe('n2');
    // The candidate being worked on stays, contended or not.
    const step = nextCompletionStep(three, { ...snapshot([a, b, c]), contended: new Set(['n1']) });
    expect(step.kind === 'checkpoint' && step.candidate.node).toBe('n1');
  });

  it('orders the candidates: the current one, the later uncontended, the later contended; none past the end', () => {
    const four = intent({ n1: [], n2: [], n3: [], n4: [] }, 1);
    expect(candidateOrder(four, new Set(['n3']))).toEqual([1, 3, 2]);
    expect(candidateOrder(four, undefined)).toEqual([1, 2, 3]);
    expect(candidateOrder({ ...four, index: 4 }, new Set())).toEqual([]);
  });

  it('lets a BestEffort victim go when its checkpoint failed', () => {
    const be = victim('be', 'n1', { policy: 'BestEffort' });
    const step = nextCompletionStep(intent({ n1: ['uid-be'] }), snapshot([be], { 'uid-be': 'failed' }));
    expect(step.kind === 'release' && step.candidate.victims.map((v) => v.action)).toEqual(['evict']);
  });

  it('abandons, evicting nothing, when the preemptor is gone, bound or being deleted', () => {
    expect(nextCompletionStep(two, snapshot([a, b], {}, null))).toEqual({ kind: 'abandon', why: 'preemptor deleted' });
    expect(nextCompletionStep(two, snapshot([a, b], {}, pendingPreemptor({ nodeName: 'n9' })))).toEqual({
      kind: 'abandon',
      why: 'preemptor bound to n9',
    });
    expect(nextCompletionStep(two, snapshot([a, b], {}, pendingPreemptor({ deleting: true })))).toEqual({
      kind: 'abandon',
      why: 'preemptor is being deleted',
    });
  });

  it('abandons when the intent expired, and when no candidate is left', () => {
    expect(nextCompletionStep({ ...two, expiresAt: NOW - 1 }, snapshot([a, b])).kind).toBe('abandon');
    expect(nextCompletionStep(two, snapshot([a, b], { 'uid-a': 'failed', 'uid-b': 'failed' }))).toEqual({
      kind: 'abandon',
      why: 'no candidate left whose victims may go',
    });
  });

  it("is done when the current candidate's victims are gone already", () => {
    expect(nextCompletionStep(two, snapshot([b])).kind).toBe('done');
  });

  it('never releases a victim that is not of lower priority or sits on another node', () => {
    const high = victim('high', 'n1', { priority: 1000, policy: 'Never' });
    const moved = victim('moved', 'n3', { policy: 'Never' });
    expect(nextCompletionStep(intent({ n1: ['uid-high'], n2: ['uid-moved'] }), snapshot([high, moved])).kind).toBe(
      'abandon',
    );
  });
});

class FakeWriter implements PreemptionWriter {
  readonly calls: string[] = [];
  live: LivePod | undefined = { uid: 'uid-urgent', deleting: false };
  nominated: string | undefined;

  async getPod(namespace: string, name: string): Promise<LivePod | undefined> {
    this.calls.push(`get ${namespace}/${name}`);
    return this.live && { ...this.live, ...(this.nominated ? { nominatedNodeName: this.nominated } : {}) };
  }
  async nominate(pod: PodRef, n: string): Promise<void> {
    this.calls.push(`nominate ${pod.name} ${n}`);
    this.nominated = n;
  }
  async evict(pod: PodRef): Promise<'evicted' | 'gone'> {
    this.calls.push(`evict ${pod.namespace}/${pod.name} ${pod.uid}`);
    return 'evicted';
  }
}

describe('the completer against a kubelet and a Checkpoint store', () => {
  let sim: KubeletSimulator | undefined;
  let completer: PreemptionCompleter | undefined;
  afterEach(async () => {
    completer?.stop();
    await sim?.stop();
  });

  async function rig(pods: Pod[], latencyMs: number) {
    sim = new KubeletSimulator({ latency: { baseMs: latencyMs, msPerGiB: 0 } });
    const port = await sim.start();
    for (const p of pods) sim.setPod(simPodFromV1Pod(p as never));
    const urgent = plainPod('urgent');
    urgent.spec!.priority = 1000;
    const view = new SnapshotView({
      nodes: ['n1', 'n2', 'n3'].map((n) =>
        node(n, { arch: 'amd64', runtime: 'cri-o://1.31.2', address: '127.0.0.1', port }),
      ),
      pods: [...pods, urgent],
    });
    const store = new MemoryCheckpointStore();
    view.checkpointsByKey = store.objects;
    const metrics = new Metrics({ defaultMetrics: false });
    const executor = testExecutor(view, store, { metrics });
    const writer = new FakeWriter();
    completer = testCompleter(view, executor, writer, metrics);
    return { view, store, writer, metrics, sim, executor };
  }

  /** The completer tracks the preemptor's preemption of these victims on n1, as the preempt verb hands it over. */
  const trackOnN1 = (...victims: string[]) =>
    completer!.track({
      preemptor: PREEMPTOR,
      priority: 1000,
      candidates: [{ node: 'n1', victims, numPDBViolations: 0 }],
      index: 0,
    });

  const until = async (cond: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('nominates the node at once, and evicts a Required victim only after its Ready record is in the store', async () => {
    const r = await rig(
      [victim('trainer', 'n1', { policy: 'Required' }), victim('web', 'n1', { policy: 'Never' })],
      300,
    );
    await trackOnN1('uid-trainer', 'uid-web');
    await until(() => r.writer.calls.some((c) => c.startsWith('evict')));
    const [ck] = [...r.store.objects.values()];
    expect(ck!.status!.phase).toBe('Ready');
    expect(r.writer.calls).toEqual([
      'nominate urgent n1',
      'get default/urgent',
      'evict ml/trainer uid-trainer',
      'evict ml/web uid-web',
    ]);
    expect(completer!.has('uid-urgent')).toBe(false);
  });

  it("evicts a victim once its own checkpoint is recorded, not after the candidate's slowest, and each once", async () => {
    const r = await rig(
      [victim('small', 'n1', { policy: 'Required' }), victim('large', 'n1', { policy: 'Required' })],
      50,
    );
    r.sim.inject({ pod: 'large', failure: { kind: 'slow', extraMs: 1_500 } });
    await trackOnN1('uid-small', 'uid-large');
    await until(() => r.writer.calls.includes('evict ml/small uid-small'));
    // The large one's dump still runs: no Ready record of it yet, and it was not evicted.
    const phases = () => new Map([...r.store.objects.values()].map((c) => [c.spec.source.pod.name, c.status?.phase]));
    expect(phases().get('small')).toBe('Ready');
    expect(phases().get('large')).not.toBe('Ready');
    expect(r.writer.calls.some((c) => c.startsWith('evict ml/large'))).toBe(false);
    expect(completer!.has('uid-urgent')).toBe(true);
    await until(() => r.writer.calls.includes('evict ml/large uid-large'));
    expect(phases().get('large')).toBe('Ready');
    expect(r.writer.calls.filter((c) => c.startsWith('evict'))).toEqual([
      'evict ml/small uid-small',
      'evict ml/large uid-large',
    ]);
    expect(r.writer.calls[0]).toBe('nominate urgent n1');
    expect(completer!.has('uid-urgent')).toBe(false);
    expect(await r.metrics.registry.getSingleMetricAsString('hiatus_preemption_completions_total')).toMatch(
      /result="evicted"} 1/,
    );
  });

  it('keeps a victim released early gone, and the other, whose Required checkpoint then failed, running', async () => {
    const r = await rig(
      [victim('small', 'n1', { policy: 'Required' }), victim('large', 'n1', { policy: 'Required' })],
      50,
    );
    r.sim.inject({ pod: 'large', failure: { kind: 'runtime-error' }, delayMs: 1_000 });
    await trackOnN1('uid-small', 'uid-large');
    await until(() => !completer!.has('uid-urgent'));
    // Released with its record Ready (its replacement restores it); the failed one never goes.
    expect(r.writer.calls.filter((c) => c.startsWith('evict'))).toEqual(['evict ml/small uid-small']);
    const byPod = new Map([...r.store.objects.values()].map((c) => [c.spec.source.pod.name, c.status?.phase]));
    expect([byPod.get('small'), byPod.get('large')]).toEqual(['Ready', 'Failed']);
  });

  it('evicts nothing when the API server says the preemptor is already bound', async () => {
    const r = await rig([victim('trainer', 'n1', { policy: 'Required' })], 100);
    r.writer.live = { uid: 'uid-urgent', nodeName: 'n2', deleting: false };
    await trackOnN1('uid-trainer');
    await until(() => !completer!.has('uid-urgent'));
    expect(r.writer.calls).toEqual(['nominate urgent n1', 'get default/urgent']);
  });

  it('takes its early nomination back when it gives up on a preemptor that still waits', async () => {
    const r = await rig([victim('trainer', 'n1', { policy: 'Required' })], 50);
    r.sim.inject({ pod: 'trainer', failure: { kind: 'runtime-error' } });
    await trackOnN1('uid-trainer');
    await until(() => !completer!.has('uid-urgent'));
    await until(() => r.writer.calls.length >= 3);
    expect(r.writer.calls).toEqual(['nominate urgent n1', 'get default/urgent', 'nominate urgent ']);
    expect(r.writer.calls.some((c) => c.startsWith('evict'))).toBe(false);
  });

  it('evicts nothing while the Ready record cannot be confirmed in the API server', async () => {
    const r = await rig([victim('trainer', 'n1', { policy: 'Required' })], 50);
    const get = r.store.get.bind(r.store);
    let confirmable = false;
    r.store.get = async (ns, name) => (confirmable ? get(ns, name) : undefined);
    await trackOnN1('uid-trainer');
    await until(() => [...r.store.objects.values()].some((c) => c.status?.phase === 'Ready'));
    await new Promise((res) => setTimeout(res, 300));
    expect(r.writer.calls).toEqual(['nominate urgent n1']);
    confirmable = true;
    await until(() => r.writer.calls.some((c) => c.startsWith('evict')));
  });
});

describe('the completer racing kube-scheduler and another replica', () => {
  let sim: KubeletSimulator | undefined;
  const completers: PreemptionCompleter[] = [];
  afterEach(async () => {
    for (const c of completers.splice(0)) c.stop();
    await sim?.stop();
  });

  const until = async (cond: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  /** Two replicas over one API server (store, pods) and one watch cache. */
  async function rig(pods: Pod[]) {
    sim = new KubeletSimulator({ latency: { baseMs: 50, msPerGiB: 0 } });
    const port = await sim.start();
    for (const p of pods) sim.setPod(simPodFromV1Pod(p as never));
    const urgent = plainPod('urgent');
    urgent.spec!.priority = 1000;
    const view = new SnapshotView({
      nodes: ['n1', 'n3'].map((n) => node(n, { arch: 'amd64', runtime: 'cri-o://1.31.2', address: '127.0.0.1', port })),
      pods: [...pods, urgent],
    });
    const store = new MemoryCheckpointStore();
    view.checkpointsByKey = store.objects;
    const writer = new FakeWriter();
    const replica = (identity: string) => {
      const metrics = new Metrics({ defaultMetrics: false });
      const executor = testExecutor(view, store, { metrics, identity });
      const c = testCompleter(view, executor, writer, metrics);
      completers.push(c);
      return c;
    };
    return { view, store, writer, replica };
  }

  /** A Ready record of this victim for the preemptor, completed secondsAgo, as a replica that then died left it. */
  function readyRecord(v: Pod, secondsAgo: number): Checkpoint {
    const facts = podFacts(v);
    const completed = Date.now() - secondsAgo * 1000;
    return {
      apiVersion: 'hiatus.dev/v1alpha1',
      kind: 'Checkpoint',
      metadata: {
        name: CheckpointExecutor.nameFor({ victim: facts, preemptor: PREEMPTOR }),
        namespace: facts.namespace,
        annotations: { 'hiatus.dev/preemption-victims': facts.uid },
      },
      spec: {
        reason: 'Preemption',
        preemptor: PREEMPTOR,
        source: {
          pod: { namespace: facts.namespace, name: facts.name, uid: facts.uid },
          nodeName: facts.nodeName!,
          priority: facts.priority,
          memoryBytes: 0,
        },
        containers: ['main'],
        restoreConstraints: { node: facts.nodeName!, arch: 'amd64', cpuFeatures: [], runtime: '' },
      },
      status: {
        phase: 'Ready',
        claimedBy: 'replica-gone',
        startTime: new Date(completed - 2_000).toISOString(),
        completionTime: new Date(completed).toISOString(),
        containers: [{ name: 'main', archivePath: `/var/lib/kubelet/checkpoints/checkpoint-${facts.name}.tar` }],
      },
    };
  }

  it("does not take over a left preemption on N1 once the preemptor was nominated to N3 and N3's victims evicted", async () => {
    const old = victim('old', 'n1', { policy: 'Required' });
    const web = victim('web', 'n3', { policy: 'Never' });
    const r = await rig([old, web]);
    // Replica A completes the preemption on n3: it nominates n3 and evicts n3's victim.
    const a = r.replica('replica-a');
    await a.track({
      preemptor: PREEMPTOR,
      priority: 1000,
      candidates: [{ node: 'n3', victims: ['uid-web'], numPDBViolations: 0 }],
      index: 0,
    });
    await until(() => r.writer.calls.includes('evict ml/web uid-web'));
    // A Ready record on n1 that an earlier, abandoned attempt for the same pod left behind.
    await r.store.create(readyRecord(old, 4));
    const b = r.replica('replica-b');
    await new Promise((res) => setTimeout(res, 600)); // several adoption rounds
    expect(b.has('uid-urgent')).toBe(false);
    expect(r.writer.calls.filter((c) => c.includes('n1') || c.includes('old'))).toEqual([]);
    expect(r.writer.nominated).toBe('n3');
  });

  it('still takes over a left preemption while the preemptor is nominated to its node or nowhere', async () => {
    const old = victim('old', 'n1', { policy: 'Required' });
    const r = await rig([old]);
    await r.store.create(readyRecord(old, 4));
    r.replica('replica-b');
    await until(() => r.writer.calls.includes('evict ml/old uid-old'));
  });

  it('evicts nothing on N1 when a preempt call answered another node while its release read the preemptor', async () => {
    const trainer = victim('trainer', 'n1', { policy: 'Never' });
    const r = await rig([trainer]);
    const get = r.writer.getPod.bind(r.writer);
    let reading!: () => void;
    const read = new Promise<void>((res) => (reading = res));
    let answer!: () => void;
    r.writer.getPod = async (ns, name) => {
      reading();
      await new Promise<void>((res) => (answer = res));
      return get(ns, name);
    };
    const a = r.replica('replica-a');
    await a.track({
      preemptor: PREEMPTOR,
      priority: 1000,
      candidates: [{ node: 'n1', victims: ['uid-trainer'], numPDBViolations: 0 }],
      index: 0,
    });
    await read;
    // preempt answered n3 for the same pod (it forgets the intent); kube-scheduler has not nominated yet.
    a.forget('uid-urgent');
    answer();
    await new Promise((res) => setTimeout(res, 200));
    expect(r.writer.calls.some((c) => c.startsWith('evict'))).toBe(false);
  });
});

describe('contendedNodes', () => {
  const other = (uid: string, priority: number, nodes: string[], index = 0) => ({
    preemptor: { namespace: 'default', name: uid, uid },
    priority,
    candidates: nodes.map((n) => ({ node: n, victims: [`v-${n}`], numPDBViolations: 0 })),
    index,
  });

  it("names the node each other preemption of at least this priority works on, never this preemptor's own", () => {
    const inProgress = [
      other('uid-urgent', 1000, ['n0']),
      other('same', 1000, ['n1', 'n2']),
      other('higher', 2000, ['n3', 'n4'], 1),
      other('lower', 999, ['n5']),
      other('spent', 1000, ['n6'], 1),
    ];
    expect([...contendedNodes(inProgress, 'uid-urgent', 1000)].sort()).toEqual(['n1', 'n4']);
    expect([...contendedNodes(inProgress, 'uid-urgent', 500)].sort()).toEqual(['n1', 'n4', 'n5']);
    expect(contendedNodes([], 'uid-urgent', 1000).size).toBe(0);
  });
});
