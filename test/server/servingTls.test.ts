// Certificate reload on a TLS listener. A is what the listener starts with, B the renewal (another
// run of deploy/certs.sh: a new CA, and a shorter validity so that the expiry gauge tells them
// apart). The files sit in a directory laid out as the kubelet lays out a Secret volume (each
// name a link into `..data`, a link swapped by rename), and every probe is a NEW connection.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { silentLogger, type Logger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { peerCertificate } from '../../src/server/auth.js';
import { decideTls, ServingTls, type TlsRead } from '../../src/server/servingTls.js';
import { certsSh, type Pki } from '../helpers/pki.js';

const FILES = ['tls.crt', 'tls.key', 'ca.crt'] as const;
const SERVER_NAME = 'hiatus.hiatus-system.svc';

let tmp: string;
let a: Pki;
let b: Pki;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'hiatus-tls-reload-'));
  [a, b] = await Promise.all([certsSh(path.join(tmp, 'a')), certsSh(path.join(tmp, 'b'), 30)]);
}, 120_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const fingerprintOf = (pki: Pki) => new X509Certificate(pki.read('tls.crt')).fingerprint256;
const notAfterOf = (pki: Pki) => Math.floor(Date.parse(new X509Certificate(pki.read('tls.crt')).validTo) / 1000);
const read = (cert: Pki, key: Pki, ca?: Pki): TlsRead => ({
  files: { cert: cert.read('tls.crt'), key: key.read('tls.key'), ...(ca ? { ca: ca.read('ca.crt') } : {}) },
});

describe('decideTls', () => {
  it("applies a certificate and its key, with the leaf's notAfter and fingerprint", () => {
    const d = decideTls(read(a, a, a), undefined);
    expect(d.action).toBe('apply');
    if (d.action !== 'apply') return;
    expect(d.material.fingerprint).toBe(fingerprintOf(a));
    expect(d.material.notAfter.getTime() / 1000).toBe(notAfterOf(a));
    expect(d.material.context).toEqual({ cert: a.read('tls.crt'), key: a.read('tls.key'), ca: a.read('ca.crt') });
  });

  it('leaves files alone that it has looked at already', () => {
    const first = decideTls(read(a, a, a), undefined);
    expect(first.action === 'apply' && decideTls(read(a, a, a), first.material.digest)).toEqual({
      action: 'unchanged',
    });
  });

  it('applies a new client CA that comes alone', () => {
    const first = decideTls(read(a, a, a), undefined);
    const next = first.action === 'apply' ? decideTls(read(a, a, b), first.material.digest) : first;
    expect(next).toMatchObject({ action: 'apply', material: { context: { ca: b.read('ca.crt') } } });
  });

  it('refuses a certificate with the previous key (a rotation half done), once', () => {
    const d = decideTls(read(b, a, b), undefined);
    expect(d).toMatchObject({ action: 'refuse', reason: expect.stringMatching(/key does not match the certificate/) });
    expect(d.action === 'refuse' && decideTls(read(b, a, b), d.digest)).toEqual({ action: 'unchanged' });
  });

  it('refuses a truncated key or certificate', () => {
    const key = a.read('tls.key');
    const cert = a.read('tls.crt');
    expect(decideTls({ files: { cert, key: key.subarray(0, key.length / 2) } }, undefined)).toMatchObject({
      action: 'refuse',
      reason: expect.stringMatching(/^the key does not parse/),
    });
    expect(decideTls({ files: { cert: cert.subarray(0, cert.length / 2), key } }, undefined)).toMatchObject({
      action: 'refuse',
      reason: expect.stringMatching(/^the certificate does not parse/),
    });
  });

  it('refuses files it cannot read, once', () => {
    const d = decideTls({ error: 'ENOENT: no such file or directory' }, 'abc');
    expect(d).toMatchObject({ action: 'refuse', reason: 'ENOENT: no such file or directory' });
    expect(d.action === 'refuse' && decideTls({ error: 'ENOENT: no such file or directory' }, d.digest)).toEqual({
      action: 'unchanged',
    });
  });
});

/** A Secret volume holding pki's files, as the kubelet writes one (pkg/volume/util/atomic_writer.go). */
function secretVolume(pki: Pki): { dir: string; project: (pki: Pki) => void } {
  const dir = mkdtempSync(path.join(tmp, 'volume-'));
  let generation = 0;
  const project = (from: Pki) => {
    const data = `..${++generation}`;
    mkdirSync(path.join(dir, data));
    for (const f of FILES) copyFileSync(from.file(f), path.join(dir, data, f));
    symlinkSync(data, path.join(dir, '..data_tmp'));
    renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  };
  project(pki);
  for (const f of FILES) symlinkSync(path.join('..data', f), path.join(dir, f));
  return { dir, project };
}

interface Listener {
  servingTls: ServingTls;
  port: number;
  metrics: Metrics;
  warnings: string[];
}

const open: Listener[] = [];
afterAll(async () => {
  for (const l of open) {
    l.servingTls.stop();
    l.servingTls.server.closeAllConnections();
    await new Promise((r) => l.servingTls.server.close(r));
  }
});

/** An HTTPS listener on the volume's files that answers whether the caller's certificate verified. */
async function listen(dir: string, intervalMs = 60_000): Promise<Listener> {
  const metrics = new Metrics({ defaultMetrics: false });
  const warnings: string[] = [];
  const log: Logger = { ...silentLogger, warn: (msg, fields) => warnings.push(`${msg}: ${String(fields?.reason)}`) };
  const servingTls = new ServingTls({
    listener: 'extender',
    files: { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key'), ca: path.join(dir, 'ca.crt') },
    log,
    handler: (req, res) => res.end(JSON.stringify({ verified: peerCertificate(req.socket)?.verified })),
    expiry: metrics.tlsCertificateExpiry,
    intervalMs,
  });
  const { server } = servingTls;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const l = { servingTls, port: (server.address() as AddressInfo).port, metrics, warnings };
  open.push(l);
  return l;
}

/** The fingerprint of the certificate a new connection is served. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: SERVER_NAME, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

/** Whether the listener verified pki's kube-scheduler certificate on a new connection. */
function callerVerified(port: number, pki: Pki): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        servername: SERVER_NAME,
        rejectUnauthorized: false,
        agent: false,
        cert: pki.read('scheduler-client.crt'),
        key: pki.read('scheduler-client.key'),
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve((JSON.parse(body) as { verified: boolean }).verified));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function expiry(l: Listener): Promise<number | undefined> {
  return (await l.metrics.tlsCertificateExpiry.get()).values.find((v) => v.labels.listener === 'extender')?.value;
}

describe('ServingTls on a listener', () => {
  it('serves a renewed Secret (certificate, key and client CA) to new connections, on the same listener', async () => {
    const volume = secretVolume(a);
    const l = await listen(volume.dir);
    expect(await servedFingerprint(l.port)).toBe(fingerprintOf(a));
    expect(await expiry(l)).toBe(notAfterOf(a));
    expect(await callerVerified(l.port, a)).toBe(true);
    expect(await callerVerified(l.port, b)).toBe(false);

    volume.project(b);
    expect(await l.servingTls.check()).toBe('apply');
    expect(await servedFingerprint(l.port)).toBe(fingerprintOf(b));
    expect(await expiry(l)).toBe(notAfterOf(b));
    expect(await callerVerified(l.port, b)).toBe(true);
    expect(await callerVerified(l.port, a)).toBe(false);
    expect(await l.servingTls.check()).toBe('unchanged');
    expect(l.warnings).toEqual([]);
  });

  it('keeps serving its certificate while the files are a mismatched pair, warning once, and takes the pair once whole', async () => {
    const volume = secretVolume(a);
    const l = await listen(volume.dir);
    // Written in place, the certificate first: the kubelet never does this, a hand-made rotation may.
    writeFileSync(path.join(volume.dir, 'tls.crt'), b.read('tls.crt'));
    expect(await l.servingTls.check()).toBe('refuse');
    expect(await l.servingTls.check()).toBe('unchanged');
    expect(await servedFingerprint(l.port)).toBe(fingerprintOf(a));
    expect(await expiry(l)).toBe(notAfterOf(a));
    expect(await callerVerified(l.port, a)).toBe(true);
    expect(l.warnings).toEqual([
      'TLS files changed but cannot be served: still serving the previous certificate: the key does not match the certificate (a rotation caught half done?)',
    ]);

    writeFileSync(path.join(volume.dir, 'tls.key'), b.read('tls.key'));
    expect(await l.servingTls.check()).toBe('apply');
    expect(await servedFingerprint(l.port)).toBe(fingerprintOf(b));
  });

  it('looks at the files again on its own every intervalMs', async () => {
    const volume = secretVolume(a);
    const l = await listen(volume.dir, 50);
    l.servingTls.start();
    volume.project(b);
    const deadline = Date.now() + 5_000;
    while ((await servedFingerprint(l.port)) !== fingerprintOf(b) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await servedFingerprint(l.port)).toBe(fingerprintOf(b));
  });

  it('does not start on a certificate and a key that do not match', () => {
    const volume = secretVolume(a);
    writeFileSync(path.join(volume.dir, 'tls.key'), b.read('tls.key'));
    expect(
      () =>
        new ServingTls({
          listener: 'webhook',
          files: { cert: path.join(volume.dir, 'tls.crt'), key: path.join(volume.dir, 'tls.key') },
          handler: () => undefined,
          log: silentLogger,
          expiry: new Metrics({ defaultMetrics: false }).tlsCertificateExpiry,
          intervalMs: 1000,
        }),
    ).toThrow(/^webhook listener: .*tls\.crt and .*tls\.key: the key does not match the certificate/);
  });
});
