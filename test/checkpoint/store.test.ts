// The API server store's error mapping, over HTTP as the API server answers: callers branch on
// the kind (a lost claim, a deleted record, an API server away), never on a status code.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { ApiCheckpointStore, StoreConflict, StoreNotFound, StoreUnavailable } from '../../src/checkpoint/store.js';

describe('the API server Checkpoint store', () => {
  let status = 404;
  /** When set, requests are held unanswered (an API server that stopped answering). */
  let hang = false;
  const held: http.ServerResponse[] = [];
  let server: http.Server;
  let store: ApiCheckpointStore;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (hang) {
          held.push(res);
          return;
        }
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: status }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
      ],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    store = new ApiCheckpointStore(kc);
  });
  afterAll(
    () =>
      new Promise<void>((r) => {
        for (const res of held) res.destroy();
        server.close(() => r());
      }),
  );

  const record = {
    apiVersion: 'hiatus.dev/v1alpha1',
    kind: 'Checkpoint',
    metadata: { name: 'trainer-3f9a1c2b7d4e', namespace: 'ml', resourceVersion: '7' },
  } as unknown as Checkpoint;

  it('answers StoreNotFound when the record it updates was deleted (404), StoreConflict on 409, else StoreUnavailable', async () => {
    status = 404;
    await expect(store.replace(record)).rejects.toBeInstanceOf(StoreNotFound);
    status = 409;
    await expect(store.replace(record)).rejects.toBeInstanceOf(StoreConflict);
    status = 503;
    await expect(store.replace(record)).rejects.toBeInstanceOf(StoreUnavailable);
  });

  it("gives up a read and an update when the caller's signal aborts, however long the API server takes", async () => {
    hang = true;
    try {
      for (const call of [
        (signal: AbortSignal) => store.get('ml', 'trainer-3f9a1c2b7d4e', { signal }),
        (signal: AbortSignal) => store.replace(record, { signal }),
      ]) {
        const started = Date.now();
        await expect(call(AbortSignal.timeout(100))).rejects.toBeInstanceOf(StoreUnavailable);
        expect(Date.now() - started).toBeLessThan(2_000);
      }
      expect(held).toHaveLength(2);
    } finally {
      hang = false;
    }
  });
});
