import { describe, expect, it } from '@jest/globals';
import { MAX_JSON_DEPTH, RequestMemory, Reservation, requestCost, scanJson } from '../../src/server/body.js';

const scan = (text: string, maxDepth = MAX_JSON_DEPTH) => scanJson(Buffer.from(text), maxDepth);

describe('scanJson', () => {
  it('counts objects, arrays, strings, values and properties', () => {
    expect(scan('{"a":[1,2,{"b":"c"}],"d":[]}')).toEqual({
      tooDeep: false,
      containers: 4,
      strings: 4,
      commas: 3,
      colons: 3,
    });
  });

  it('stops at the first level past the limit', () => {
    expect(scan('[[[1]]]', 3).tooDeep).toBe(false);
    expect(scan('[[[[1]]]]', 3)).toMatchObject({ tooDeep: true, containers: 4 });
    expect(scan('['.repeat(1_000_000)).tooDeep).toBe(true);
  });

  it('skips brackets, commas and escaped quotes inside strings', () => {
    expect(scan('["[[{,:", "a\\\\", "b\\"]]]]\\"", "\\\\\\"{"]', 1)).toEqual({
      tooDeep: false,
      containers: 1,
      strings: 4,
      commas: 3,
      colons: 0,
    });
  });

  it('leaves an unterminated string to JSON.parse', () => {
    expect(scan('["abc').tooDeep).toBe(false);
  });
});

describe('requestCost', () => {
  it('charges more for many small items than for the same bytes of text, and more for two-byte text', () => {
    const text = Buffer.from(JSON.stringify(['x'.repeat(3000)]));
    const items = Buffer.from(JSON.stringify(Array(1000).fill({})));
    expect(requestCost(items.length, true, scanJson(items, 10))).toBeGreaterThan(
      requestCost(text.length, true, scanJson(text, 10)) * 5,
    );
    expect(requestCost(text.length, false, scanJson(text, 10))).toBeGreaterThan(
      requestCost(text.length, true, scanJson(text, 10)),
    );
  });
});

describe('RequestMemory', () => {
  it('admits reservations up to its limit and takes released bytes back', () => {
    const memory = new RequestMemory(100);
    const a = new Reservation(memory);
    const b = new Reservation(memory);
    expect(a.growTo(60)).toBe(true);
    expect(b.growTo(50)).toBe(false);
    expect(b.bytes).toBe(0);
    expect(a.growTo(90)).toBe(true);
    expect(memory.inUse).toBe(90);
    a.release();
    a.release();
    expect(memory.inUse).toBe(0);
    expect(b.growTo(100)).toBe(true);
  });
});
