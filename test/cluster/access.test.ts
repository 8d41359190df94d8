// The cached access review (src/cluster/access.ts): what it asks the API server, and what it
// answers in between, against a loopback API server that plays the authorizer.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { AccessCheck, selfAccessReviewer } from '../../src/cluster/access.js';
import type { Logger } from '../../src/log.js';

const PATCH_PODS = { verb: 'patch', resource: 'pods', group: '' };

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug() {}, info() {}, warn: (msg: string) => void warnings.push(msg), error() {} };
}

describe('the access review against an API server', () => {
  const seen: { method: string; url: string; body: unknown }[] = [];
  /** What the authorizer answers next: allowed, or an HTTP status to fail with. */
  let next: boolean | number = true;
  let server: http.Server;
  let kc: KubeConfig;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { spec: unknown };
        seen.push({ method: req.method!, url: req.url!, body });
        if (typeof next === 'number') {
          res.writeHead(next, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ kind: 'Status', code: next }));
          return;
        }
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            spec: body.spec,
            status: { allowed: next, ...(next ? {} : { reason: 'no RBAC policy matched' }) },
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        { name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
      ],
      users: [{ name: 'u', token: 'the-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('asks for the verb on the resource in every namespace, and reads status.allowed', async () => {
    const review = selfAccessReviewer(kc);
    next = true;
    expect(await review(PATCH_PODS)).toBe(true);
    next = false;
    expect(await review(PATCH_PODS)).toBe(false);
    expect(seen[0]).toEqual({
      method: 'POST',
      url: '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
      body: {
        spec: { resourceAttributes: PATCH_PODS },
      },
    });
  });

  it('says no until the first answer, follows each review, keeps the last answer when a review fails, and warns once each time it is lost', async () => {
    const log = recordingLogger();
    const check = new AccessCheck({
      review: selfAccessReviewer(kc),
      attributes: PATCH_PODS,
      intervalMs: 60_000,
      log,
      without: 'restore pods are not gated',
    });
    expect(check.allowed()).toBe(false);
    next = true;
    await check.refresh();
    expect(check.allowed()).toBe(true);
    next = 500;
    await check.refresh();
    expect(check.allowed()).toBe(true);
    next = false;
    await check.refresh();
    await check.refresh();
    expect(check.allowed()).toBe(false);
    expect(log.warnings.filter((w) => w.startsWith('NOT ALLOWED'))).toEqual([
      'NOT ALLOWED to patch pods: restore pods are not gated',
    ]);
    // Granted, then taken away again: said again.
    next = true;
    await check.refresh();
    expect(check.allowed()).toBe(true);
    next = false;
    await check.refresh();
    expect(check.allowed()).toBe(false);
    expect(log.warnings.filter((w) => w.startsWith('NOT ALLOWED'))).toHaveLength(2);
  });
});
