// The certificates deploy/certs.sh issues, as a test reads them: each call is a new CA with the
// same names, as a second run of certs.sh on another directory would be.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const CERTS_SH = fileURLToPath(new URL('../../deploy/certs.sh', import.meta.url));

export interface Pki {
  dir: string;
  file: (name: string) => string;
  read: (name: string) => Buffer;
}

/** Runs deploy/certs.sh into dir (openssl, a few seconds); days: the leaf certificates' validity. */
export async function certsSh(dir: string, days?: number): Promise<Pki> {
  await promisify(execFile)('bash', [CERTS_SH, dir], {
    env: { ...process.env, ...(days ? { HIATUS_CERT_DAYS: String(days) } : {}) },
  });
  return { dir, file: (n) => path.join(dir, n), read: (n) => readFileSync(path.join(dir, n)) };
}
