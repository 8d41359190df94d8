import { CheckpointExecutor, type ExecutorOptions } from '../../src/checkpoint/executor.js';
import { DirectKubeletClient } from '../../src/checkpoint/kubeletClient.js';
import type { MemoryCheckpointStore } from '../../testing/memoryStore.js';
import type { SnapshotView } from '../../testing/snapshotView.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { PreemptionWriter } from '../../src/cluster/podWriter.js';
import { PreemptionCompleter, type CompleterOptions } from '../../src/preemption/completer.js';

/**
 * One extender replica's executor over a shared API server (store) and the simulated kubelets
 * (reached at each Node's published address and port), with the defaults the tests share.
 */
export function testExecutor(
  view: SnapshotView,
  store: MemoryCheckpointStore,
  o: Partial<ExecutorOptions> = {},
): CheckpointExecutor {
  return new CheckpointExecutor({
    kubelet: new DirectKubeletClient({ port: 10250, insecureSkipVerify: true, token: () => undefined }),
    store,
    metrics: new Metrics({ defaultMetrics: false }),
    log: silentLogger,
    cached: (ns, name) => view.checkpoint(ns, name),
    kubeletTimeoutSeconds: 120,
    maxAgeMs: 600_000,
    retryFailedAfterMs: 300_000,
    maxConcurrent: 8,
    maxPerNode: 2,
    ...o,
  });
}

/**
 * A started completer over this view and executor, with the defaults the tests share (policy
 * Never, 30 s per candidate, a 50 ms loop); stop() it after the test.
 */
export function testCompleter(
  view: SnapshotView,
  executor: CheckpointExecutor,
  writer: PreemptionWriter,
  metrics: Metrics,
  o: Partial<CompleterOptions> = {},
): PreemptionCompleter {
  return new PreemptionCompleter({
    view,
    executor,
    writer,
    metrics,
    log: silentLogger,
    defaultPolicy: 'Never',
    maxWaitMs: 30_000,
    intervalMs: 50,
    ...o,
  }).start();
}
