// Prometheus metrics, named <namespace>_<subsystem>_<name>_<unit> and bucketed like
// kube-scheduler's own. Labels are low-cardinality: never a pod or node name.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';

export type Verb = 'filter' | 'prioritize' | 'preempt';
/** fast: the pod has nothing to restore; restore: it carries the restore contract. */
export type RequestPath = 'fast' | 'restore';
/** success, error (the answer carries an Error or a non-200 status for a valid request), bad_request (undecodable). */
export type RequestResult = 'success' | 'error' | 'bad_request';

/**
 * Seconds. Doubling from 1 ms, then edges at the budget: kube-scheduler's httpTimeout (5 s as
 * shipped) and HiatusPreemptAnswerNearTimeout's 4 s. histogram_quantile interpolates inside a
 * bucket, so with doubling edges (2.048, 4.096) answers of 2-3 s (--preempt-wait 2s) read as a p99
 * near 4.1 s and fired that alert.
 */
export const PREEMPT_ANSWER_BUCKETS = [
  0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1, 2, 3, 4, 4.5, 5, 8,
];

export class Metrics {
  readonly registry = new Registry();
  readonly requestDuration: Histogram<'verb' | 'path' | 'result'>;
  readonly requests: Counter<'verb' | 'path' | 'result'>;
  readonly rejectedNodes: Counter<'reason'>;
  readonly cacheObjects: Gauge<'kind'>;
  readonly cacheSynced: Gauge;
  readonly preemptionAttempts: Counter<'outcome'>;
  readonly preemptionVictims: Histogram;
  readonly preemptionAnswerDuration: Histogram<'outcome'>;
  readonly preemptionCompletions: Counter<'result'>;
  readonly preemptionCompletionDuration: Histogram;
  readonly preemptionsInProgress: Gauge;
  readonly checkpoints: Counter<'result'>;
  readonly checkpointDuration: Histogram;
  readonly checkpointsInFlight: Gauge;
  readonly kubeletErrors: Counter<'kind'>;
  readonly restores: Counter<'result'>;
  readonly webhookRequests: Counter<'result'>;
  readonly callersRefused: Counter<'listener' | 'reason'>;
  readonly placements: Counter<'result'>;
  readonly retentionDeletions: Counter<'reason'>;
  readonly checkpointsByPhase: Gauge<'phase'>;
  readonly checkpointPublications: Gauge<'state'>;
  readonly checkpointArchiveBytes: Gauge<'phase'>;
  readonly tlsCertificateExpiry: Gauge<'listener'>;

  constructor(
    opts: {
      defaultMetrics?: boolean;
      cacheSizes?: () => Record<string, number>;
      synced?: () => boolean;
      checkpointPhases?: () => Record<string, number>;
      /** Ready and Restoring records by publication state (src/checkpoint/summary.ts). */
      checkpointPublications?: () => Record<string, number>;
      /** Archive bytes the records hold, by phase. */
      checkpointArchiveBytes?: () => Record<string, number>;
    } = {},
  ) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.requestDuration = new Histogram({
      name: 'hiatus_extender_request_duration_seconds',
      help: 'Latency of extender verbs as served (body read to response written), by verb, path and result.',
      labelNames: ['verb', 'path', 'result'],
      // kube-scheduler's framework_extension_point_duration_seconds buckets: 0.1 ms doubling 12 times.
      buckets: exponentialBuckets(0.0001, 2, 12),
      registers,
    });
    this.requests = new Counter({
      name: 'hiatus_extender_requests_total',
      help: 'Extender requests by verb, path (fast or restore) and result (success, error, bad_request).',
      labelNames: ['verb', 'path', 'result'],
      registers,
    });
    this.rejectedNodes = new Counter({
      name: 'hiatus_filter_rejected_nodes_total',
      help: 'Nodes reported unresolvable by filter, by reason.',
      labelNames: ['reason'],
      registers,
    });
    const sizes = opts.cacheSizes;
    this.cacheObjects = new Gauge({
      name: 'hiatus_cluster_cache_objects',
      help: 'Objects held in the extender caches, by kind (node, pod, priorityclass, node_facts_lru, ...).',
      labelNames: ['kind'],
      registers,
      collect() {
        if (!sizes) return;
        for (const [kind, n] of Object.entries(sizes())) this.set({ kind }, n);
      },
    });
    const synced = opts.synced;
    this.cacheSynced = new Gauge({
      name: 'hiatus_cluster_cache_synced',
      help: '1 once every cluster view cache has listed its objects, else 0.',
      registers,
      collect() {
        if (synced) this.set(synced() ? 1 : 0);
      },
    });
    this.preemptionAttempts = new Counter({
      name: 'hiatus_preemption_attempts_total',
      help: 'preempt calls by outcome: node (a candidate returned), pending (checkpoints still running), no_candidate, bad_request, error.',
      labelNames: ['outcome'],
      registers,
    });
    this.preemptionVictims = new Histogram({
      name: 'hiatus_preemption_victims',
      help: 'Victims on the candidate returned by preempt.',
      // kube-scheduler's scheduler_preemption_victims buckets.
      buckets: exponentialBuckets(1, 2, 7),
      registers,
    });
    this.preemptionAnswerDuration = new Histogram({
      name: 'hiatus_preemption_answer_duration_seconds',
      help: 'Time from a preempt call to its answer, checkpoints included, by outcome.',
      labelNames: ['outcome'],
      buckets: PREEMPT_ANSWER_BUCKETS,
      registers,
    });
    this.preemptionCompletions = new Counter({
      name: 'hiatus_preemption_completions_total',
      help: 'Preemptions hiatus completed itself after answering preempt while checkpoints ran, by result: evicted (victims marked and deleted), done (victims already gone), abandoned (preemptor gone, bound or nothing may go), error.',
      labelNames: ['result'],
      registers,
    });
    this.preemptionCompletionDuration = new Histogram({
      name: 'hiatus_preemption_completion_duration_seconds',
      help: 'Time from the preempt call that started checkpoints to the eviction hiatus made itself.',
      buckets: exponentialBuckets(0.1, 2, 14),
      registers,
    });
    this.preemptionsInProgress = new Gauge({
      name: 'hiatus_preemptions_in_progress',
      help: 'Preemptions this replica is completing: checkpoints running after preempt answered.',
      registers,
    });
    this.checkpoints = new Counter({
      name: 'hiatus_checkpoints_total',
      help: 'Pod checkpoints this replica took (called the kubelet for), by result: ready, failed, not_recorded (taken but the record could not be written).',
      labelNames: ['result'],
      registers,
    });
    this.checkpointDuration = new Histogram({
      name: 'hiatus_checkpoint_duration_seconds',
      help: 'Time to checkpoint and record one pod (all its containers).',
      buckets: exponentialBuckets(0.01, 2, 16),
      registers,
    });
    this.checkpointsInFlight = new Gauge({
      name: 'hiatus_checkpoints_in_flight',
      help: 'Pod checkpoints this replica is taking now.',
      registers,
    });
    this.kubeletErrors = new Counter({
      name: 'hiatus_kubelet_checkpoint_errors_total',
      help: 'Failed kubelet checkpoint calls by kind: unauthorized, forbidden, not_found, runtime, timeout, bad_response, unreachable.',
      labelNames: ['kind'],
      registers,
    });
    this.restores = new Counter({
      name: 'hiatus_restores_total',
      help: "Restores by result: matched (a new pod claimed a checkpoint), marked (a hand-written restore contract got the marker resource), restored, failed, released (claim given back), claim_error, corrupt_checkpoint (a pod restored from none of its workload's checkpoints, one or more of which had unusable constraints), refused (a hand-written restore-from naming another workload's checkpoint: the pod was created without restore), image_published (a pod held while its checkpoint was uploaded got its images), started_fresh (such a pod was released without its checkpoint: the upload failed or outlasted --publication-wait), superseded (a pod of a checkpoint's StatefulSet ordinal, Job completion index or pod name started without it: no longer offered).",
      labelNames: ['result'],
      registers,
    });
    this.placements = new Counter({
      name: 'hiatus_restore_placements_total',
      help: 'Restore pods placed before kube-scheduler tried them (ungated) or released from the hiatus.dev/restore-placement gate, by result: nominated (nominatedNodeName set to the checkpoint node; used unless kube-scheduler had started on the pod), not_nominated (that node is gone or cannot restore it: the pod searches every node), late (kube-scheduler bound the pod first), error (an API write failed; a gated pod is then released not_nominated, a failed release is retried), forbidden (the API server refused to lift a gate, 403: the extender may not patch pods; the pod stays gated, retried), not_gated (the webhook left a restore pod ungated because the extender may not patch pods: deploy/rbac-placement-gate.yaml not applied).',
      labelNames: ['result'],
      registers,
    });
    this.webhookRequests = new Counter({
      name: 'hiatus_webhook_requests_total',
      help: 'Admission reviews by result: patched, skipped, error, bad_request. None ever rejects a pod.',
      labelNames: ['result'],
      registers,
    });
    this.callersRefused = new Counter({
      name: 'hiatus_callers_refused_total',
      help: 'Requests refused before their body was read, by listener (extender, webhook) and reason: no_certificate, untrusted_certificate (not signed by the client CA, or not for client authentication), name_not_allowed.',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.retentionDeletions = new Counter({
      name: 'hiatus_retention_deletions_total',
      help: 'Checkpoint records deleted by retention, by reason: max_per_workload, max_age, consumed.',
      labelNames: ['reason'],
      registers,
    });
    this.tlsCertificateExpiry = new Gauge({
      name: 'hiatus_tls_certificate_expiry_timestamp_seconds',
      help: "Unix time (seconds) at which the certificate each listener serves expires (its notAfter), by listener (extender, webhook); set when the certificate is loaded and when changed files are reloaded. kube-scheduler's and the API server's calls fail past it.",
      labelNames: ['listener'],
      registers,
    });
    this.checkpointsByPhase = readGauge(
      'hiatus_checkpoints',
      'Checkpoint records in the cluster by phase.',
      'phase',
      opts.checkpointPhases,
      registers,
    );
    this.checkpointPublications = readGauge(
      'hiatus_checkpoint_publications',
      "Ready and Restoring Checkpoint records by the node agent's publication state: none (not started, or no agent), uploading, published, failed; disabled instead of none without --checkpoint-images. Unpublished ones restore only on their source node.",
      'state',
      opts.checkpointPublications,
      registers,
    );
    this.checkpointArchiveBytes = readGauge(
      'hiatus_checkpoint_archive_bytes',
      'Bytes of checkpoint archives the Checkpoint records hold, as the node agent measured them, by phase.',
      'phase',
      opts.checkpointArchiveBytes,
      registers,
    );
  }
}

/**
 * A gauge of one label whose values are read at each scrape (label value -> number), the series
 * of values no longer there dropped; without a source it reports nothing.
 */
function readGauge<L extends string>(
  name: string,
  help: string,
  label: L,
  source: (() => Record<string, number>) | undefined,
  registers: Registry[],
): Gauge<L> {
  return new Gauge({
    name,
    help,
    labelNames: [label],
    registers,
    collect() {
      if (!source) return;
      this.reset();
      for (const [value, n] of Object.entries(source())) this.set({ [label]: value } as Partial<Record<L, string>>, n);
    },
  });
}
