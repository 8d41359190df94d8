import { describe, expect, it } from '@jest/globals';
import { keyOf, objectKey } from '../../src/api/keys.js';

describe('object keys', () => {
  it('writes namespace/name', () => {
    expect(objectKey('team-a', 'train-0')).toBe('team-a/train-0');
  });

  it('keys a reference by its fields and an object by its metadata, alike', () => {
    const podRef = { namespace: 'team-a', name: 'train-0', uid: 'u1' };
    const record = { metadata: { namespace: 'team-a', name: 'train-0-ckpt', uid: 'u2' }, spec: { source: podRef } };
    expect(keyOf(podRef)).toBe('team-a/train-0');
    expect(keyOf(record)).toBe('team-a/train-0-ckpt');
  });
});
