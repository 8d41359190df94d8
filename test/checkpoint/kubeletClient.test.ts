// Reading the kubelet's checkpoint answer (src/checkpoint/kubeletClient.ts): only 200 with the
// kubelet's own archive path for the container is a checkpoint; anything else fails it.
import { describe, expect, it } from '@jest/globals';
import { KubeletError, parseCheckpointAnswer, type CheckpointRequest } from '../../src/checkpoint/kubeletClient.js';
import type { NodeFacts } from '../../src/cluster/facts.js';

const REQ: CheckpointRequest = {
  node: { name: 'n1' } as NodeFacts,
  namespace: 'ml',
  pod: 'trainer-0',
  container: 'main',
  timeoutSeconds: 120,
};

const failure = (status: number, body: string): KubeletError | undefined => {
  try {
    parseCheckpointAnswer(REQ, status, body);
    return undefined;
  } catch (e) {
    return e as KubeletError;
  }
};

describe('parseCheckpointAnswer', () => {
  it("returns the kubelet's archive path for the container", () => {
    const path = '/var/lib/kubelet/checkpoints/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43Z.tar';
    expect(parseCheckpointAnswer(REQ, 200, `{"items":["${path}"]}`)).toEqual([path]);
  });

  it('is a bad response when a 200 names a file that is not the archive of this container', () => {
    for (const body of [
      '{"items":["/etc/passwd"]}',
      '{"items":["/var/lib/kubelet/checkpoints/checkpoint-trainer-1_ml-main-2026-11-28T16:49:43Z.tar"]}',
      '{"items":["/var/lib/kubelet/checkpoints/../../../root/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43Z.tar"]}',
    ]) {
      expect(failure(200, body)).toMatchObject({ name: 'KubeletError', kind: 'bad_response', status: 200 });
    }
  });
});
