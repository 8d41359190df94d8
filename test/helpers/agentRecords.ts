// Checkpoint records as the node agent's tests use them: a preemption's record of a pod of
// namespace ml, on node-a unless told otherwise.
import path from 'node:path';
import type { Checkpoint, CheckpointStatus } from '../../src/api/checkpoint.js';
import { writeCheckpointArchive } from '../../testing/kubelet/archive.js';

export interface AgentRecordOptions {
  node?: string;
  arch?: string;
  runtime?: string;
  /** The source pod; default p (uid pu). */
  pod?: { name: string; uid: string };
  /** metadata.uid uid-<name>; false: none (a store's create gives one). */
  uid?: boolean;
}

export function agentRecord(name: string, status: CheckpointStatus, o: AgentRecordOptions = {}): Checkpoint {
  const node = o.node ?? 'node-a';
  const pod = o.pod ?? { name: 'p', uid: 'pu' };
  return {
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name, namespace: 'ml', ...(o.uid === false ? {} : { uid: `uid-${name}` }) },
    spec: {
      reason: 'Preemption',
      source: { pod: { namespace: 'ml', ...pod }, nodeName: node, priority: 0, memoryBytes: 0 },
      containers: (status.containers ?? [{ name: 'main' }]).map((c) => c.name),
      restoreConstraints: { node, arch: o.arch ?? 'amd64', cpuFeatures: [], runtime: o.runtime ?? 'cri-o' },
    },
    status,
  };
}

/**
 * A pod's container main checkpointed now into dir, as the kubelet names it, and the Ready record
 * of it to create (no UID: the store gives one).
 */
export async function readyArchive(
  dir: string,
  name: string,
  pagesBytes: number,
): Promise<{ file: string; record: Checkpoint }> {
  const file = path.join(dir, `checkpoint-${name}_ml-main-2026-05-22T14:31:35Z.tar`);
  await writeCheckpointArchive(file, {
    namespace: 'ml',
    pod: name,
    podUid: `pu-${name}`,
    container: 'main',
    containerId: 'e'.repeat(64),
    checkpointedAt: new Date(),
    pagesBytes,
  });
  const record = agentRecord(
    name,
    { phase: 'Ready', completionTime: new Date().toISOString(), containers: [{ name: 'main', archivePath: file }] },
    { pod: { name, uid: `pu-${name}` }, runtime: 'cri-o://1.31.2', uid: false },
  );
  return { file, record };
}
