import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { PooledKubeConfig } from '../../src/cluster/pooledKubeConfig.js';
import { generateSelfSignedCert } from '../../testing/kubelet/kubelet.js';

// An API server stand-in over TLS that counts handshakes and answers every GET with a pod.
describe('PooledKubeConfig: API clients over kept connections', () => {
  let dir: string;
  let server: https.Server;
  let handshakes = 0;
  let paths: string[] = [];
  let ca: string;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hiatus-pooled-'));
    const tls = await generateSelfSignedCert(['127.0.0.1'], dir);
    ca = readFileSync(tls.certFile, 'utf8');
    server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'ml' } }));
    });
    server.on('secureConnection', () => handshakes++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const load = <T extends KubeConfig>(kc: T, caData: string = ca): T => {
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: url, caData: Buffer.from(caData).toString('base64') }],
      users: [{ name: 'u', token: 'the-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  };

  async function reads(kc: KubeConfig, n: number): Promise<number> {
    handshakes = 0;
    paths = [];
    const core = kc.makeApiClient(CoreV1Api);
    for (let i = 0; i < n; i++) {
      const pod = await core.readNamespacedPod({ name: `p${i}`, namespace: 'ml' });
      expect(pod.metadata?.name).toBe('p');
    }
    expect(paths).toEqual(Array.from({ length: n }, (_, i) => `/api/v1/namespaces/ml/pods/p${i}`));
    return handshakes;
  }

  it("client-node's own KubeConfig makes a TLS handshake for every call (why this class exists)", async () => {
    expect(await reads(load(new KubeConfig()), 5)).toBe(5);
  });

  it('one handshake for sequential calls, the server still verified against the kubeconfig CA', async () => {
    const kc = load(new PooledKubeConfig());
    expect(await reads(kc, 5)).toBe(1);
    // Another API client of the same kubeconfig shares the pool.
    expect(await reads(kc, 3)).toBe(0);
    kc.closeConnections();
    expect(await reads(kc, 2)).toBe(1);
    kc.closeConnections();
  });

  it('refuses a server its CA did not sign, as client-node does (the pool keeps the TLS options)', async () => {
    const otherDir = mkdtempSync(path.join(os.tmpdir(), 'hiatus-pooled-other-'));
    try {
      const other = await generateSelfSignedCert(['127.0.0.1'], otherDir);
      const kc = load(new PooledKubeConfig(), readFileSync(other.certFile, 'utf8'));
      await expect(kc.makeApiClient(CoreV1Api).readNamespacedPod({ name: 'p', namespace: 'ml' })).rejects.toThrow(
        /certificate|self.signed/i,
      );
      kc.closeConnections();
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('a changed client identity or CA gets its own pool; a proxy agent is left alone', () => {
    const kc = new PooledKubeConfig();
    const a = kc.pooled(new https.Agent({ ca: 'A', cert: 'C1', key: 'K1' }));
    expect(kc.pooled(new https.Agent({ ca: 'A', cert: 'C1', key: 'K1' }))).toBe(a);
    const b = kc.pooled(new https.Agent({ ca: 'A', cert: 'C2', key: 'K2' }));
    expect(b).not.toBe(a);
    expect(kc.pooled(new https.Agent({ ca: 'B', cert: 'C1', key: 'K1' }))).not.toBe(a);
    expect(kc.pooled(new https.Agent({ ca: 'A', cert: 'C1', key: 'K1', rejectUnauthorized: false }))).not.toBe(a);
    expect((a as https.Agent & { options: { keepAlive?: boolean; cert?: string } }).options).toMatchObject({
      keepAlive: true,
      cert: 'C1',
    });
    expect(kc.pooled(new http.Agent())).toBeDefined();
    class ProxyAgent extends https.Agent {}
    expect(kc.pooled(new ProxyAgent())).toBeUndefined();
    kc.closeConnections();
  });
});
