// Which of the images this agent published to delete from the registry, pure. The agent keeps a
// ledger of them (imageGc.ts) under its state directory: what it published is known from its own
// records, never guessed from a repository's tags, so it never deletes another node's image.
//
// An image goes only once no Checkpoint this agent sees is its record (by UID) and none names its
// digest, and then only after graceMs. The agent cannot see pods (it has no pods permission), so
// the rule rests on the record, which no restore pod outlives while it may still pull:
// - a pod is given an image only from a Ready record it claims (restore/publication.ts), and the
//   claim makes the record Restoring, which retention never deletes (restore/retention.ts);
// - a Restoring record becomes Restored once its pod is Running on a node (restore/lifecycle.ts):
//   every container created, so every image pulled; retention deletes it --retention-consumed-ttl
//   later, and the kubelet's image garbage collection keeps an image its containers use;
// - it goes back to Ready, or is consumed, only once its pod is gone or was bound and deleted.
// What the rule cannot see is a record deleted by hand while its pod pulls, or a Failed record
// (its pod did not start in time) that retention deletes while the pod still exists: graceMs is
// the time such a pod keeps its image (docs/node-agent.md).
import type { Checkpoint } from '../api/checkpoint.js';

/** One container's image as this agent published it (or started to: no digest yet). */
export interface PublishedImage {
  /** The agent's publication key: Checkpoint UID and container. */
  key: string;
  /** host[:port] of the registry it went to. */
  registry: string;
  repository: string;
  tag: string;
  /** The Checkpoint (namespace/name) and UID it was published for; the image carries the UID. */
  checkpoint: string;
  uid: string;
  container: string;
  /** The index's digest once published; until then the tag names it, and the UID proves it ours. */
  digest?: string;
  /** When the agent first found no record for it (ms since the epoch). */
  goneSince?: number;
}

export interface ImageGcPolicy {
  /** How long an image outlives its record. */
  graceMs: number;
  /** Images deleted per round at most (a few requests each). */
  maxPerRound: number;
}

export interface ImageGcPlan {
  /** The ledger with goneSince set or cleared. */
  ledger: PublishedImage[];
  /** The images to delete this round, longest gone first. */
  deletions: PublishedImage[];
  /** Images whose record is gone and that are still in the registry (deletions included). */
  awaiting: number;
}

/** The digest a reference `host/repo@sha256:…` pins, or undefined. */
function digestOf(image: string | undefined): string | undefined {
  const at = image?.lastIndexOf('@') ?? -1;
  return at >= 0 ? image!.slice(at + 1) : undefined;
}

export function planImageGc(
  ledger: readonly PublishedImage[],
  checkpoints: Iterable<Checkpoint>,
  now: number,
  policy: ImageGcPolicy,
): ImageGcPlan {
  const uids = new Set<string>();
  const referenced = new Set<string>();
  for (const c of checkpoints) {
    if (c.metadata.uid) uids.add(c.metadata.uid);
    for (const s of c.status?.containers ?? []) {
      const d = digestOf(s.image);
      if (d) referenced.add(d);
    }
  }
  const next: PublishedImage[] = [];
  const due: PublishedImage[] = [];
  let awaiting = 0;
  for (const e of ledger) {
    if (uids.has(e.uid) || (e.digest !== undefined && referenced.has(e.digest))) {
      const { goneSince: _, ...kept } = e;
      next.push(kept);
      continue;
    }
    const gone = { ...e, goneSince: e.goneSince ?? now };
    next.push(gone);
    awaiting++;
    if (now - gone.goneSince >= policy.graceMs) due.push(gone);
  }
  due.sort((a, b) => a.goneSince! - b.goneSince!);
  return { ledger: next, deletions: due.slice(0, policy.maxPerRound), awaiting };
}
