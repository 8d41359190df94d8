// The list half of the Reflector (src/cluster/reflector.ts), which needs no API server: it reads
// every page of a list (client-node's `_continue` token or the raw `continue`), keeps the
// projection of each keyed object, reports deletions of objects gone since the last list before
// the upserts, becomes synced, and retries a failed list with backoff doubling from 500 ms to
// 30 s and reset by a list that succeeds; stop() ends the retries. The KubeConfig here has no
// cluster, so each watch fails before any request and the Reflector lists again after 500 ms.
// The watch half (event phases, bookmarks, 410 Gone) needs a server: the e2e suite covers it.
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../src/log.js';
import { Reflector, type ListPage, type Listed, type ReflectorOptions } from '../../src/cluster/reflector.js';

interface Obj {
  metadata: { name?: string; resourceVersion?: string };
  spec?: { size: number };
}

const obj = (name: string | undefined, size = 1): Obj => ({ metadata: { ...(name ? { name } : {}) }, spec: { size } });

/** A Logger that keeps the warnings, the Reflector's only account of a retry. */
function recordingLogger(): Logger & { warnings: Record<string, unknown>[] } {
  const warnings: Record<string, unknown>[] = [];
  return { debug() {}, info() {}, error() {}, warn: (msg, fields) => warnings.push({ msg, ...fields }), warnings };
}

function reflector(list: ReflectorOptions<Obj, number>['list']) {
  const log = recordingLogger();
  const changes: string[] = [];
  const r = new Reflector<Obj, number>(
    new KubeConfig(),
    {
      kind: 'widgets',
      path: '/apis/example.dev/v1/widgets',
      list,
      project: (o: Obj) => o.spec?.size ?? 0,
      key: (o: Listed<Obj>) => o?.metadata?.name,
      onChange: (type, key, value) => changes.push(`${type} ${key}${value === undefined ? '' : `=${value}`}`),
    },
    log,
  );
  return { r, log, changes };
}

/** A list function answering from a queue of results, one per call, and recording the tokens asked for. */
function scripted(...results: (ListPage | Error)[]) {
  const tokens: (string | undefined)[] = [];
  const list = async (token: string | undefined): Promise<ListPage> => {
    tokens.push(token);
    const next = results.shift();
    if (next === undefined) throw new Error('list called more often than scripted');
    if (next instanceof Error) throw next;
    return next;
  };
  return { list, tokens };
}

describe('Reflector (list and retry, no server)', () => {
  let stop: (() => void) | undefined;
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    stop?.();
    jest.useRealTimers();
  });

  it('reads every page, following either continue token, and keeps the projection of each keyed object', async () => {
    const { list, tokens } = scripted(
      { items: [obj('a', 1), obj('b', 2)], metadata: { _continue: 'page-2' } },
      { items: [obj(undefined, 9), obj('c', 3)], metadata: { continue: 'page-3' } },
      { items: [obj('d', 4)], metadata: { resourceVersion: '42' } },
    );
    const { r, changes } = reflector(list);
    stop = () => r.stop();
    expect(r.synced).toBe(false);
    r.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(tokens).toEqual([undefined, 'page-2', 'page-3']);
    expect([...r.store]).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ]);
    expect(changes).toEqual(['upsert a=1', 'upsert b=2', 'upsert c=3', 'upsert d=4']);
    expect(r.synced).toBe(true);
  });

  it('on a later list, reports the objects gone since the last one as deleted, before the upserts', async () => {
    const { list } = scripted(
      { items: [obj('a', 1), obj('b', 2), obj('c', 3)] },
      { items: [obj('c', 30), obj('d', 4)] },
    );
    const { r, changes } = reflector(list);
    stop = () => r.stop();
    r.start();
    await jest.advanceTimersByTimeAsync(0);
    changes.length = 0;
    // The watch cannot start (no cluster): the Reflector lists again after 500 ms.
    await jest.advanceTimersByTimeAsync(500);
    expect(changes).toEqual(['delete a', 'delete b', 'upsert c=30', 'upsert d=4']);
    expect([...r.store]).toEqual([
      ['c', 30],
      ['d', 4],
    ]);
  });

  it('retries a failed list with backoff doubling from 500 ms up to 30 s, and is not synced until one succeeds', async () => {
    const failures = Array.from({ length: 8 }, (_, i) => new Error(`connection refused ${i}`));
    const { list, tokens } = scripted(...failures, { items: [obj('a')] });
    const { r, log } = reflector(list);
    stop = () => r.stop();
    r.start();
    const delays = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000];
    for (const [i, delay] of delays.entries()) {
      await jest.advanceTimersByTimeAsync(0);
      expect(r.synced).toBe(false);
      expect(log.warnings[i]).toEqual({
        msg: 'list failed',
        kind: 'widgets',
        error: `connection refused ${i}`,
        retryInMs: delay,
      });
      // Not a millisecond early.
      await jest.advanceTimersByTimeAsync(delay - 1);
      expect(tokens).toHaveLength(i + 1);
      await jest.advanceTimersByTimeAsync(1);
      expect(tokens).toHaveLength(i + 2);
    }
    await jest.advanceTimersByTimeAsync(0);
    expect(r.synced).toBe(true);
    expect([...r.store.keys()]).toEqual(['a']);
  });

  it('starts the backoff again at 500 ms after a list succeeds', async () => {
    const { list } = scripted(new Error('e0'), new Error('e1'), { items: [obj('a')] });
    const { r, log } = reflector(list);
    stop = () => r.stop();
    r.start();
    await jest.advanceTimersByTimeAsync(500 + 1000);
    expect(r.synced).toBe(true);
    // After the list, the watch fails (no cluster) and is retried at the reset delay.
    expect(log.warnings.map((w) => w.retryInMs)).toEqual([500, 1000, 500]);
  });

  it('stays synced with what it had when a later list fails', async () => {
    const { list } = scripted({ items: [obj('a', 1)] }, new Error('API server unavailable'));
    const { r, changes } = reflector(list);
    stop = () => r.stop();
    r.start();
    await jest.advanceTimersByTimeAsync(500);
    expect(r.synced).toBe(true);
    expect([...r.store]).toEqual([['a', 1]]);
    expect(changes).toEqual(['upsert a=1']);
  });

  it('lists no more once stopped, a retry already scheduled included', async () => {
    const { list, tokens } = scripted(new Error('e0'), { items: [] });
    const { r } = reflector(list);
    r.start();
    await jest.advanceTimersByTimeAsync(0);
    expect(tokens).toHaveLength(1);
    r.stop();
    await jest.advanceTimersByTimeAsync(60_000);
    expect(tokens).toHaveLength(1);
    expect(r.synced).toBe(false);
  });
});
