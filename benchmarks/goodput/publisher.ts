// The node agents of the simulated nodes, as far as the restore path sees them: each node
// publishes its Ready checkpoints' archives one after another (oldest first, as
// src/agent/plan.ts publicationWork orders them), each taking the time the calibration gives for
// the container's memory, and records the digest-pinned reference on the Checkpoint exactly as
// the agent does (src/agent/plan.ts withPublication, optimistic replace). No registry is involved:
// the restoring node's "pull" is the restore time's share in trace.ts. Real agents, with a
// registry, are what test/e2e/agent.e2e.test.ts runs; a few dozen of them would not fit 2 cores.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { publicationWork, samePublication, withPublication, type PublicationUpdate } from '../../src/agent/plan.js';
import { StoreConflict, type CheckpointStore } from '../../src/checkpoint/store.js';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { publishSeconds } from './trace.js';

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export class SimulatedPublisher {
  /** Archives published, and how many writes lost a race or failed. */
  published = 0;
  readonly errors: string[] = [];
  private readonly queued = new Set<string>();
  /** When each node's agent is free again (ms). */
  private readonly freeAt = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();

  /**
   * @param images the extender's --checkpoint-images (HOST[:PORT]/PREFIX).
   * @param archiveDir each node's checkpoint directory, where an agent accepts archives from.
   */
  constructor(
    private readonly store: CheckpointStore,
    private readonly images: string,
    private readonly speed: number,
    private readonly archiveDir: (node: string) => string,
  ) {}

  /** A Checkpoint as the watch shows it: queue its archives that still need an image. */
  seen(c: Checkpoint): void {
    const node = c.spec.source.nodeName;
    for (const w of publicationWork([c], node, this.archiveDir(node))) {
      if (w.refused) {
        this.errors.push(`${c.metadata.namespace}/${c.metadata.name}/${w.container}: ${w.refused}`);
        continue;
      }
      const key = `${c.metadata.namespace}/${c.metadata.name}/${w.container}`;
      if (this.queued.has(key)) continue;
      this.queued.add(key);
      const now = Date.now();
      const done =
        Math.max(now, this.freeAt.get(node) ?? 0) + (publishSeconds(c.spec.source.memoryBytes) / this.speed) * 1000;
      this.freeAt.set(node, done);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.publish(c, w.container, w.archivePath).catch((e: unknown) =>
          this.errors.push(`${key}: ${(e as Error).message}`),
        );
      }, done - now);
      this.timers.add(timer);
    }
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private async publish(c: Checkpoint, container: string, archivePath: string): Promise<void> {
    const digest = await sha256File(archivePath);
    const { size } = await fsp.stat(archivePath);
    const u: PublicationUpdate = {
      publication: { state: 'Published' },
      image: `${this.images}/${c.metadata.namespace}@sha256:${digest}`,
      archiveBytes: size,
      archiveDigest: `sha256:${digest}`,
    };
    for (let i = 0; i < 5; i++) {
      const live = await this.store.get(c.metadata.namespace, c.metadata.name);
      if (!live || (c.metadata.uid && live.metadata.uid !== c.metadata.uid)) return;
      if (samePublication(live, container, u)) return;
      try {
        await this.store.replace(withPublication(live, container, u, new Date().toISOString()));
        this.published += 1;
        return;
      } catch (e) {
        if (!(e instanceof StoreConflict)) throw e;
      }
    }
    this.errors.push(`${c.metadata.name}/${container}: five conflicts in a row`);
  }
}
