import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { isNotFound, podPlacementWriter } from '../../src/cluster/podWriter.js';

interface Seen {
  method: string;
  url: string;
  contentType: string;
  auth: string;
  body: unknown;
  socket: number;
}

describe('the restore-placement pod writer against an API server', () => {
  const seen: Seen[] = [];
  let status = 200;
  let server: http.Server;
  let kc: KubeConfig;
  const sockets = new Map<unknown, number>();

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (!sockets.has(req.socket)) sockets.set(req.socket, sockets.size + 1);
        seen.push({
          method: req.method!,
          url: req.url!,
          contentType: req.headers['content-type'] ?? '',
          auth: req.headers.authorization ?? '',
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
          socket: sockets.get(req.socket)!,
        });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(status === 200 ? '{"kind":"Pod"}' : '{"kind":"Status","code":404,"reason":"NotFound"}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
      ], // client-node's condition for a plain-HTTP server
      users: [{ name: 'u', token: 'the-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const pod = { namespace: 'ml', name: 'trainer-0', uid: 'u-1' };

  it('sets nominatedNodeName through pods/status and removes only its gate at its index, both guarded by the UID, over one connection', async () => {
    const w = podPlacementWriter(kc);
    await w.nominate(pod, 'n-holder');
    expect(await w.liftGate(pod, 'hiatus.dev/restore-placement', 1)).toBe(true);
    expect(seen).toEqual([
      {
        method: 'PATCH',
        url: '/api/v1/namespaces/ml/pods/trainer-0/status',
        contentType: 'application/strategic-merge-patch+json',
        auth: 'Bearer the-token',
        body: { metadata: { uid: 'u-1' }, status: { nominatedNodeName: 'n-holder' } },
        socket: 1,
      },
      {
        method: 'PATCH',
        url: '/api/v1/namespaces/ml/pods/trainer-0',
        contentType: 'application/json-patch+json',
        auth: 'Bearer the-token',
        body: [
          { op: 'test', path: '/metadata/uid', value: 'u-1' },
          { op: 'test', path: '/spec/schedulingGates/1/name', value: 'hiatus.dev/restore-placement' },
          { op: 'remove', path: '/spec/schedulingGates/1' },
        ],
        socket: 1,
      },
    ]);
  });

  it('fails with the HTTP status, which tells a pod that is gone from other failures; a failed test means the gate is gone', async () => {
    status = 404;
    const w = podPlacementWriter(kc);
    const err = await w.nominate(pod, 'n-holder').catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toMatch(/^nominate n-holder for pod ml\/trainer-0: HTTP 404/);
    status = 500;
    const other = await w.liftGate(pod, 'g', 0).catch((e: unknown) => e);
    expect(isNotFound(other)).toBe(false);
    expect((other as { code: number }).code).toBe(500);
    status = 422;
    expect(await w.liftGate(pod, 'g', 0)).toBe(false);
  });
});
