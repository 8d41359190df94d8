// Checkpoint names (src/checkpoint/names.ts): one name per victim and preemptor's attempt, the
// same on every extender replica (creating the Checkpoint is the lock), readable from the pod's
// name and always a valid Kubernetes object name whatever the pod was called.
// And the kubelet's archive names, the only archive paths a record takes.
import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { checkpointName, isKubeletArchivePath } from '../../src/checkpoint/names.js';

const VICTIM = '6f1c2a9e-1b7d-4c55-9a3e-2f0d7c8b1e44';
const PREEMPTOR = 'c0a8f3d2-7e61-4b0a-8d2c-5e9f1a3b7c60';
// RFC 1123 label, as apimachinery's IsDNS1123Label checks it: names of this shape are valid
// for any resource, the Checkpoint CRD's DNS-subdomain rule included.
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const hash = (victim: string, preemptor: string) =>
  createHash('sha256').update(`${victim}/${preemptor}`).digest('hex').slice(0, 12);

describe('checkpointName', () => {
  it('is the pod name and 12 hex digits of sha256(victim UID/preemptor UID)', () => {
    expect(checkpointName('trainer-0', VICTIM, PREEMPTOR)).toBe(`trainer-0-${hash(VICTIM, PREEMPTOR)}`);
  });

  it('is the same on every call for one attempt, and differs for another victim or another preemptor', () => {
    const name = checkpointName('trainer-0', VICTIM, PREEMPTOR);
    expect(checkpointName('trainer-0', VICTIM, PREEMPTOR)).toBe(name);
    expect(checkpointName('trainer-0', PREEMPTOR, VICTIM)).not.toBe(name);
    expect(checkpointName('trainer-0', VICTIM, 'other-preemptor')).not.toBe(name);
    expect(checkpointName('trainer-0', 'other-victim', PREEMPTOR)).not.toBe(name);
  });

  it('lower-cases the pod name and turns every character a label cannot hold into a dash', () => {
    const h = hash(VICTIM, PREEMPTOR);
    expect(checkpointName('Trainer.Worker_0', VICTIM, PREEMPTOR)).toBe(`trainer-worker-0-${h}`);
    expect(checkpointName('a..b', VICTIM, PREEMPTOR)).toBe(`a--b-${h}`);
  });

  it('keeps at most 40 characters of the pod name, without a dash at either end', () => {
    const h = hash(VICTIM, PREEMPTOR);
    expect(checkpointName('x'.repeat(100), VICTIM, PREEMPTOR)).toBe(`${'x'.repeat(40)}-${h}`);
    // The 40th character is a dash: trimmed after the cut, so no "--" before the hash.
    expect(checkpointName(`${'y'.repeat(39)}-tail`, VICTIM, PREEMPTOR)).toBe(`${'y'.repeat(39)}-${h}`);
    expect(checkpointName('--web--', VICTIM, PREEMPTOR)).toBe(`web-${h}`);
  });

  it('falls back to "ckpt" when nothing of the pod name is left', () => {
    const h = hash(VICTIM, PREEMPTOR);
    expect(checkpointName('', VICTIM, PREEMPTOR)).toBe(`ckpt-${h}`);
    expect(checkpointName('...', VICTIM, PREEMPTOR)).toBe(`ckpt-${h}`);
    expect(checkpointName('日本', VICTIM, PREEMPTOR)).toBe(`ckpt-${h}`);
  });

  it('is always a DNS-1123 label of at most 63 characters', () => {
    const names = ['trainer-0', 'A'.repeat(253), '-.-', `${'z'.repeat(39)}.x`, 'ümlaut-pod', 'web.v2.canary', '0'];
    for (const pod of names) {
      const name = checkpointName(pod, VICTIM, PREEMPTOR);
      expect(name).toMatch(DNS1123_LABEL);
      expect(name.length).toBeLessThanOrEqual(63);
    }
  });
});

describe('isKubeletArchivePath', () => {
  const trainer = { namespace: 'ml', pod: 'trainer-0', container: 'main' };

  it("accepts the kubelet's archive name for the container, in UTC or the node's offset, under any root dir", () => {
    expect(
      isKubeletArchivePath(
        '/var/lib/kubelet/checkpoints/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43Z.tar',
        trainer,
      ),
    ).toBe(true);
    expect(
      isKubeletArchivePath(
        '/data/kubelet/checkpoints/checkpoint-trainer-0_ml-main-2026-11-28T17:49:43+01:00.tar',
        trainer,
      ),
    ).toBe(true);
  });

  it('refuses any other file, a relative or unclean path, and the archive of another pod or container', () => {
    for (const path of [
      '/etc/passwd',
      'checkpoints/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43Z.tar',
      '/var/lib/kubelet/checkpoints/../../../etc/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43Z.tar',
      '/var/lib/kubelet/./checkpoints/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43Z.tar',
      '/var/lib/kubelet//checkpoints/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43Z.tar',
      '/var/lib/kubelet/checkpoints/checkpoint-trainer-1_ml-main-2026-11-28T16:49:43Z.tar',
      '/var/lib/kubelet/checkpoints/checkpoint-trainer-0_ml-sidecar-2026-11-28T16:49:43Z.tar',
      '/var/lib/kubelet/checkpoints/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43.123Z.tar',
      '/var/lib/kubelet/checkpoints/checkpoint-trainer-0_ml-main-2026-11-28T16:49:43Z.tar.gz',
      '/var/lib/kubelet/checkpoints/checkpoint-trainer-0_ml-main-x.tar',
    ]) {
      expect([path, isKubeletArchivePath(path, trainer)]).toEqual([path, false]);
    }
  });
});
