// What `list` and `describe` show of Checkpoint records: table rows, and the timeline of one
// checkpoint from its record and the events of the pods it touched. Pure.
import type { Checkpoint } from '../api/checkpoint.js';
import { age, bytes, fields, table } from './format.js';
import { keyOf } from '../api/keys.js';

/** An Event as the CLI reads it (core/v1 Event, the parts shown). */
export interface EventInfo {
  type: string;
  reason: string;
  message: string;
  /** lastTimestamp, else eventTime, else firstTimestamp (RFC 3339). */
  time?: string;
  pod: string;
  podUID?: string;
  count?: number;
}

export interface TimelineEntry {
  /** RFC 3339; absent when the record does not say when (publication). */
  time?: string;
  what: string;
  detail: string;
}

const dash = (s: string | undefined) => (s ? s : '-');

/**
 * Whether the node agent published the archives as checkpoint images: its publication state
 * (yes, uploading, failed), else how many containers have an image (no, 1/2), - without archives.
 */
export function published(c: Checkpoint): string {
  const containers = c.status?.containers ?? [];
  if (containers.length === 0) return '-';
  const state = c.status?.publication?.state;
  if (state === 'Uploading') return 'uploading';
  if (state === 'Failed') return 'failed';
  const images = containers.filter((x) => x.image).length;
  if (images === containers.length) return 'yes';
  return images === 0 ? 'no' : `${images}/${containers.length}`;
}

/** The archives' total size as the node agent measured them; undefined until it has every one. */
export function archiveBytes(c: Checkpoint): number | undefined {
  const containers = c.status?.containers ?? [];
  if (containers.length === 0 || containers.some((x) => x.archiveBytes === undefined)) return undefined;
  return containers.reduce((sum, x) => sum + x.archiveBytes!, 0);
}

/** Who restores from it: the claim, the restored pod, or a failed restore. */
export function restoreState(c: Checkpoint): string {
  const r = c.status?.restore;
  if (!r) return '-';
  switch (c.status?.phase) {
    case 'Restoring':
      return `claimed by ${r.podName}`;
    case 'Restored':
      return r.nodeName ? `${r.podName} on ${r.nodeName}` : r.podName;
    case 'Failed':
      return `failed: ${r.podName}`;
    default:
      return r.podName;
  }
}

function owner(c: Checkpoint): string {
  const o = c.spec.source.owner;
  return o ? `${o.kind}/${o.name}` : '-';
}

const byNamespaceAndName = (a: Checkpoint, b: Checkpoint) =>
  a.metadata.namespace.localeCompare(b.metadata.namespace) || a.metadata.name.localeCompare(b.metadata.name);

/** The `list` table. SIZE is the archives' (once the node agent measured them); -o wide adds the memory the pod requested. */
export function listTable(
  items: readonly Checkpoint[],
  o: { now: number; wide: boolean; allNamespaces: boolean },
): string {
  const header = ['NAME', 'PHASE', 'POD', 'NODE', 'REASON', 'SIZE', 'PUBLISHED', 'RESTORE', 'AGE'];
  if (o.wide) header.push('MEMORY', 'CONTAINERS', 'OWNER', 'PREEMPTOR', 'COMPLETED');
  if (o.allNamespaces) header.unshift('NAMESPACE');
  const rows = [...items].sort(byNamespaceAndName).map((c) => {
    const row = [
      c.metadata.name,
      dash(c.status?.phase ?? (c.spec.reason === 'Manual' ? 'Requested' : undefined)),
      c.spec.source.pod.name,
      dash(c.spec.source.nodeName),
      c.spec.reason,
      bytes(archiveBytes(c)),
      published(c),
      restoreState(c),
      age(c.metadata.creationTimestamp, o.now),
    ];
    if (o.wide) {
      row.push(
        c.spec.source.memoryBytes ? bytes(c.spec.source.memoryBytes) : '-',
        dash(c.spec.containers.join(',')),
        owner(c),
        c.spec.preemptor ? keyOf(c.spec.preemptor) : '-',
        c.status?.completionTime ? age(c.status.completionTime, o.now) : '-',
      );
    }
    if (o.allNamespaces) row.unshift(c.metadata.namespace);
    return row;
  });
  return rows.length === 0 ? '' : table(header, rows);
}

function requested(c: Checkpoint): string {
  switch (c.spec.reason) {
    case 'Preemption':
      return c.spec.preemptor ? `by the preemption of pod ${keyOf(c.spec.preemptor)}` : 'by a preemption';
    case 'Manual':
      return 'by hand (kubectl hiatus checkpoint)';
    default:
      return `reason ${c.spec.reason}`;
  }
}

/** hiatus's own events about checkpoints: this one's the record tells, others' belong to other records. */
const aboutCheckpoints = (e: EventInfo) => e.reason === 'Checkpointed' || e.reason === 'CheckpointFailed';

/** What happened to a checkpoint, oldest first: the record's times and the pods' events. */
export function timeline(c: Checkpoint, events: readonly EventInfo[]): TimelineEntry[] {
  const s = c.status;
  const src = c.spec.source;
  const r = s?.restore;
  // creationTimestamp has whole seconds (metav1.Time): a claim written in the same second may
  // carry a startTime (milliseconds, the claimer's clock) before it. The request came first.
  const created = c.metadata.creationTimestamp;
  const requestedAt = s?.startTime && created && Date.parse(s.startTime) < Date.parse(created) ? s.startTime : created;
  const entries: TimelineEntry[] = [{ time: requestedAt, what: 'Requested', detail: requested(c) }];
  if (s?.startTime && s.claimedBy) {
    entries.push({
      time: s.startTime,
      what: 'Checkpointing',
      detail: `${s.claimedBy} called the kubelet of node ${src.nodeName}`,
    });
  }
  const failedBeforeRestore = s?.phase === 'Failed' && !r;
  if (s?.completionTime && !failedBeforeRestore && s.phase !== 'Pending') {
    const archives = s.containers ?? [];
    entries.push({
      time: s.completionTime,
      what: 'Checkpointed',
      detail: `${archives.length} container(s): ${archives.map((a) => a.name).join(', ')}`,
    });
  }
  if (failedBeforeRestore) entries.push({ time: s.completionTime, what: 'CheckpointFailed', detail: dash(s.message) });
  const images = (s?.containers ?? []).filter((x) => x.image);
  const pub = s?.publication;
  if (pub?.state === 'Failed' || pub?.state === 'Uploading') {
    entries.push({
      ...(pub.time ? { time: pub.time } : {}),
      what: pub.state === 'Failed' ? 'PublicationFailed' : 'Publishing',
      detail: dash(pub.message),
    });
  }
  if (images.length > 0) {
    const time = pub?.state === 'Published' ? pub.time : undefined;
    entries.push({
      ...(time ? { time } : {}),
      what: 'Published',
      detail: images.map((x) => `${x.name}: ${x.image}`).join(', '),
    });
  }
  for (const e of events) {
    const isSource = e.pod === src.pod.name && (!e.podUID || e.podUID === src.pod.uid);
    const isRestore = e.pod === r?.podName && (!e.podUID || !r.podUID || e.podUID === r.podUID);
    if (!isSource && !isRestore) continue;
    if (isSource && aboutCheckpoints(e)) continue;
    const times = e.count && e.count > 1 ? ` (x${e.count})` : '';
    entries.push({ ...(e.time ? { time: e.time } : {}), what: e.reason, detail: `pod ${e.pod}: ${e.message}${times}` });
  }
  if (r)
    entries.push({
      time: r.claimedAt,
      what: 'Claimed',
      detail: `for pod ${r.podName}${r.podUID ? ` (uid ${r.podUID})` : ''}`,
    });
  if (r?.restoredAt)
    entries.push({
      time: r.restoredAt,
      what: 'Restored',
      detail: `pod ${r.podName}${r.nodeName ? ` on node ${r.nodeName}` : ''}`,
    });
  if (s?.phase === 'Failed' && r) entries.push({ what: 'RestoreFailed', detail: dash(s.message) });
  return sortByTime(entries);
}

/** Oldest first; an entry without a time stays right after the entry it followed. */
function sortByTime(entries: TimelineEntry[]): TimelineEntry[] {
  let last = -Infinity;
  const keyed = entries.map((e, i) => {
    const t = Date.parse(e.time ?? '');
    if (Number.isFinite(t)) last = t;
    return { e, i, t: Number.isFinite(t) ? t : last };
  });
  keyed.sort((a, b) => a.t - b.t || a.i - b.i);
  return keyed.map((k) => k.e);
}

/** `describe`: the record's fields, its archives, and its timeline. */
export function describeText(c: Checkpoint, events: readonly EventInfo[], now: number): string {
  const s = c.status;
  const src = c.spec.source;
  const rc = c.spec.restoreConstraints;
  const pairs: [string, string][] = [
    ['Name', c.metadata.name],
    ['Namespace', c.metadata.namespace],
    ['Phase', s?.phase ?? (c.spec.reason === 'Manual' ? 'Requested (no hiatus replica has taken it yet)' : '-')],
    ['Reason', c.spec.reason],
    ['Pod', `${keyOf(src.pod)} (uid ${src.pod.uid})`],
    ['Owner', owner(c)],
    [
      'Generation',
      `${c.spec.generation ?? 1}${c.spec.restoredFrom ? ` (the pod was restored from ${c.spec.restoredFrom})` : ''}`,
    ],
    ['Node', dash(src.nodeName)],
    [
      'Restores on',
      `${dash(rc.arch)}, ${dash(rc.runtime)}, CPU features ${rc.cpuFeatures.length ? rc.cpuFeatures.join(',') : 'none'}${rc.zone ? `, zone ${rc.zone}` : ''}`,
    ],
    [
      'Size',
      `${archiveBytes(c) === undefined ? 'archives not measured yet' : `${bytes(archiveBytes(c))} of archives`}, ${bytes(src.memoryBytes)} of memory requested`,
    ],
    ['Published', published(c)],
    ['Restore', restoreState(c)],
    ['Age', age(c.metadata.creationTimestamp, now)],
  ];
  if (s?.message) pairs.push(['Message', s.message]);
  const lines = fields(pairs);
  const archives = s?.containers ?? [];
  lines.push('Containers:');
  if (archives.length === 0) {
    lines.push(`  ${c.spec.containers.length ? c.spec.containers.join(', ') : 'all'}: no archive`);
  } else {
    lines.push(
      ...table(
        ['NAME', 'ARCHIVE', 'SIZE', 'IMAGE'],
        archives.map((a) => [a.name, a.archivePath, bytes(a.archiveBytes), dash(a.image)]),
      )
        .split('\n')
        .map((l) => `  ${l}`),
    );
  }
  lines.push('Timeline:');
  const entries = timeline(c, events);
  lines.push(
    ...table(
      ['TIME', 'WHAT', 'DETAIL'],
      entries.map((e) => [e.time ? e.time.replace(/\.\d+Z$/, 'Z') : '-', e.what, e.detail]),
    )
      .split('\n')
      .map((l) => `  ${l}`),
  );
  return lines.join('\n');
}
