// JSON Pointer escaping (src/restore/jsonPatch.ts) for the annotation keys the restore webhook and
// the placement controller write into JSON Patch paths: RFC 6901 section 3 escapes "~" as "~0"
// and "/" as "~1", and a reader (section 4) undoes "~1" first, then "~0", so "~" must be
// escaped first for a key to survive the round trip.
import { describe, expect, it } from '@jest/globals';
import { pointer } from '../../src/restore/jsonPatch.js';

/** Evaluates one reference token as RFC 6901 section 4 says. */
const unescapeToken = (token: string) => token.replace(/~1/g, '/').replace(/~0/g, '~');

/** Resolves a JSON Pointer against a document, as the API server's JSON Patch does. */
function resolve(doc: unknown, path: string): unknown {
  let at = doc;
  for (const token of path.split('/').slice(1)) at = (at as Record<string, unknown>)[unescapeToken(token)];
  return at;
}

describe('pointer', () => {
  it('escapes the "/" of a prefixed annotation key, so that it is one reference token', () => {
    expect(pointer('hiatus.dev/restore-from')).toBe('hiatus.dev~1restore-from');
    expect(pointer('a/b/c')).toBe('a~1b~1c');
  });

  it('escapes "~" as "~0"', () => {
    expect(pointer('a~b')).toBe('a~0b');
  });

  it('escapes "~" before "/", so "~1" in a key does not come back as "/"', () => {
    expect(pointer('~/')).toBe('~0~1');
    expect(pointer('a~1b')).toBe('a~01b');
    expect(pointer('~01')).toBe('~001');
  });

  it('leaves a key without "~" or "/" as it is, the empty key included', () => {
    expect(pointer('app.kubernetes.io')).toBe('app.kubernetes.io');
    expect(pointer('')).toBe('');
  });

  it('round-trips every key through an RFC 6901 reader', () => {
    const keys = ['hiatus.dev/restore-constraints', 'a~1b', '~0~1', '//', '~~', 'x/~/y', 'plain'];
    const annotations = Object.fromEntries(keys.map((k, i) => [k, `v${i}`]));
    const pod = { metadata: { annotations } };
    keys.forEach((k, i) => {
      expect(unescapeToken(pointer(k))).toBe(k);
      expect(resolve(pod, `/metadata/annotations/${pointer(k)}`)).toBe(`v${i}`);
    });
  });
});
