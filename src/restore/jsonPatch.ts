// JSON Patch (RFC 6902) operations, as the restore webhook answers them and the placement
// controller sends them.

export interface JsonPatchOp {
  op: 'add' | 'replace' | 'remove' | 'test';
  path: string;
  value?: unknown;
}

/** JSON Pointer escaping (RFC 6901) for annotation keys that contain "/". */
export const pointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');
