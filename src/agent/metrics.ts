// The node agent's Prometheus metrics (hiatus_agent_*), on its own registry and port.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, exponentialBuckets } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly publishDuration: Histogram<'result'>;
  readonly publishedBytes: Counter;
  readonly publishes: Counter<'result'>;
  readonly uploadsInFlight: Gauge;
  readonly publicationRetries: Gauge;
  readonly errors: Counter<'kind'>;
  readonly archives: Gauge;
  readonly archiveBytes: Gauge;
  readonly deletions: Counter<'reason'>;
  readonly runtimeRestore: Gauge<'value'>;
  readonly imageDeletions: Counter<'result'>;
  readonly imageDeleteFailures: Counter<'reason'>;
  readonly imagesAwaitingDeletion: Gauge;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.publishDuration = new Histogram({
      name: 'hiatus_agent_publish_duration_seconds',
      help: 'Time to publish one container checkpoint archive as an image, by result.',
      labelNames: ['result'],
      buckets: exponentialBuckets(0.1, 2, 14),
      registers,
    });
    this.publishedBytes = new Counter({
      name: 'hiatus_agent_published_bytes_total',
      help: 'Archive bytes sent to the registry.',
      registers,
    });
    this.publishes = new Counter({
      name: 'hiatus_agent_publishes_total',
      help: 'Archive publications by result (published, failed, retry, abandoned: past its deadline, stopped).',
      labelNames: ['result'],
      registers,
    });
    this.uploadsInFlight = new Gauge({
      name: 'hiatus_agent_uploads_in_flight',
      help: 'Archive uploads running now (at most --upload-concurrency).',
      registers,
    });
    this.publicationRetries = new Gauge({
      name: 'hiatus_agent_publication_retries',
      help: 'Container archives waiting to retry their publication (after a registry error, a deadline or a failed record write).',
      registers,
    });
    this.errors = new Counter({
      name: 'hiatus_agent_errors_total',
      help: 'Errors by kind: registry error kinds (unauthorized, denied, too_large, server, unreachable, upload_lost, digest_mismatch, bad_response), archive problems (archive_path_refused, archive_missing, archive_truncated, archive_changed), api (Kubernetes API writes), runtime_config.',
      labelNames: ['kind'],
      registers,
    });
    this.archives = new Gauge({
      name: 'hiatus_agent_archives',
      help: 'Checkpoint archives in the checkpoint directory.',
      registers,
    });
    this.archiveBytes = new Gauge({
      name: 'hiatus_agent_archive_bytes',
      help: 'Bytes of checkpoint archives in the checkpoint directory.',
      registers,
    });
    this.deletions = new Counter({
      name: 'hiatus_agent_archive_deletions_total',
      help: 'Archives deleted by reason (checkpoint_deleted, checkpoint_failed, orphan, disk_budget).',
      labelNames: ['reason'],
      registers,
    });
    this.runtimeRestore = new Gauge({
      name: 'hiatus_agent_runtime_restore',
      help: '1 for the node runtime restore setting the agent read (value: enabled, checkpoint_only, none, criu_disabled, unknown).',
      labelNames: ['value'],
      registers,
    });
    this.imageDeletions = new Counter({
      name: 'hiatus_agent_image_deletions_total',
      help: "Checkpoint images this agent published whose record is gone, removed from its ledger by result (deleted, already_gone, not_ours: the tag names another record's image, left alone).",
      labelNames: ['result'],
      registers,
    });
    this.imageDeleteFailures = new Counter({
      name: 'hiatus_agent_image_deletion_failures_total',
      help: 'Failed deletions of checkpoint images from the registry by reason: unsupported (deletion disabled in the registry), unauthorized, denied, server, unreachable, digest_mismatch, bad_response, error.',
      labelNames: ['reason'],
      registers,
    });
    this.imagesAwaitingDeletion = new Gauge({
      name: 'hiatus_agent_images_awaiting_deletion',
      help: 'Checkpoint images this agent published whose record is gone and that are not deleted yet (within the grace period, or failing).',
      registers,
    });
  }
}
