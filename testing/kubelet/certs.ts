// Serving certificates for simulated kubelets (and other loopback servers in tests).
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * A self-signed serving certificate (its own CA) for 127.0.0.1, ::1, localhost and the given hosts,
 * made with the openssl binary into dir. Share one across simulators to save the fork.
 */
export async function generateSelfSignedCert(
  hosts: string[],
  dir: string,
): Promise<{ cert: string; key: string; certFile: string; keyFile: string }> {
  const names = new Set(['IP:127.0.0.1', 'IP:::1', 'DNS:localhost']);
  for (const h of hosts) {
    if (h === '' || h === '0.0.0.0' || h === '::') continue;
    names.add(isIP(h) ? `IP:${h}` : `DNS:${h}`);
  }
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const args = [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '7',
    '-subj',
    '/CN=hiatus-kubelet-simulator',
    '-addext',
    `subjectAltName=${[...names].join(',')}`,
  ];
  try {
    await promisify(execFile)('openssl', args);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new Error('openssl is not installed: pass tls { cert, key } to the kubelet simulator', { cause: e });
    throw new Error(`openssl could not make the simulator's certificate: ${err.stderr ?? err.message}`, { cause: e });
  }
  await fsp.chmod(keyFile, 0o600);
  const [cert, key] = await Promise.all([fsp.readFile(certFile, 'utf8'), fsp.readFile(keyFile, 'utf8')]);
  return { cert, key, certFile, keyFile };
}
