// What the Checkpoint records say in aggregate, for gauges: how many await publication as images,
// and how many archive bytes they hold. Pure.
import type { Checkpoint } from '../api/checkpoint.js';

export interface CheckpointSummary {
  /**
   * Records a restore may still use (Ready, Restoring) by publication state: none (the node agent
   * has not started, or does not run), uploading, published, failed; with publication off,
   * disabled instead of none: no image is awaited, so such a record is no backlog.
   */
  publications: Record<string, number>;
  /** Archive bytes the node agent measured, by phase; 0 for a phase whose archives it has not measured. */
  archiveBytes: Record<string, number>;
}

/**
 * @param publishing whether the extender gives restore pods checkpoint images (--checkpoint-images):
 * without it nothing publishes (the shipped agent has no registry) and nothing waits for an image.
 */
export function summarize(all: Iterable<Checkpoint>, publishing: boolean): CheckpointSummary {
  const unpublished = publishing ? 'none' : 'disabled';
  const publications: Record<string, number> = { [unpublished]: 0, uploading: 0, published: 0, failed: 0 };
  const archiveBytes: Record<string, number> = {};
  for (const c of all) {
    const phase = c.status?.phase;
    if (!phase) continue;
    const containers = c.status?.containers ?? [];
    archiveBytes[phase] = (archiveBytes[phase] ?? 0) + containers.reduce((sum, x) => sum + (x.archiveBytes ?? 0), 0);
    if ((phase === 'Ready' || phase === 'Restoring') && containers.length > 0) {
      const state = c.status?.publication?.state.toLowerCase() ?? unpublished;
      publications[state] = (publications[state] ?? 0) + 1;
    }
  }
  return { publications, archiveBytes };
}
