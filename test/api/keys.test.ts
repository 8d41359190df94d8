import { describe, expect, it } from '@jest/globals';
import { keyOf, objectKey } from '../../src/api/keys.js';

describe('object keys', () => {
  it('writes namespace/name', () => {
    expect(objectKey('team-a', 'train-0')).toBe('team-a/train-0');
  });

  it('keys a reference by its fields and an object by its metadata, alike', () => {
    expect(keyOf({ namespace: 'team-a', name: 'train-0', uid: 'u1' })).toBe('team-a/train-0');
    expect(keyOf({ metadata: { namespace: 'team-a', name: 'train-0-ckpt' }, spec: {} })).toBe('team-a/train-0-ckpt');
  });
});
