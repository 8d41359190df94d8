// The extender's certificates on the e2e control plane, as deploy/certs.sh issues them in a
// cluster: one private CA that signs the serving certificate (here for IP 127.0.0.1, both
// listeners) and the client certificates of kube-scheduler (the verbs), of the API server (the
// restore webhook) and of Prometheus (/metrics), named as deploy/deployment.yaml's
// --allowed-client-names and --webhook-allowed-client-names expect. A second CA signs
// certificates with the same names, which the extender must refuse.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { V1Deployment } from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';
import { freePort } from './process.js';
import { repoRoot } from './schedulerConfig.js';

const run = promisify(execFile);

export interface ClientCert {
  name: string;
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

export interface ExtenderTls {
  caFile: string;
  /** The CA certificate, PEM. */
  ca: Buffer;
  /** Serving certificate and key for IP:127.0.0.1, both listeners. */
  certFile: string;
  keyFile: string;
  /** The restore webhook's port, fixed before the API server starts: its admission configuration names it. */
  webhookPort: number;
  scheduler: ClientCert;
  apiserver: ClientCert;
  prometheus: ClientCert;
  /** Another CA's certificates, with the scheduler's and the API server's names. */
  strangerScheduler: ClientCert;
  strangerApiserver: ClientCert;
}

/** The client names deploy/deployment.yaml allows on each listener. */
export function shippedClientNames(): { scheduler: string; apiserver: string } {
  // An empty YAML document loads as null.
  const docs = loadAll(readFileSync(path.join(repoRoot(), 'deploy/deployment.yaml'), 'utf8')) as ({
    kind?: string;
  } | null)[];
  const deployment = docs.find((d) => d?.kind === 'Deployment') as V1Deployment | undefined;
  const args = deployment?.spec?.template.spec?.containers[0]?.args ?? [];
  const value = (flag: string) => {
    const arg = args.find((a) => a.startsWith(`--${flag}=`));
    const first = arg
      ?.slice(flag.length + 3)
      .split(',')[0]
      ?.trim();
    if (!first) throw new Error(`deploy/deployment.yaml: no --${flag}`);
    return first;
  };
  return { scheduler: value('allowed-client-names'), apiserver: value('webhook-allowed-client-names') };
}

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args);
}

async function makeCa(dir: string, name: string, cn: string): Promise<void> {
  const f = (n: string) => path.join(dir, n);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(`${name}.key`)]);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    f(`${name}.key`),
    '-sha256',
    '-days',
    '1',
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    f(`${name}.crt`),
  ]);
}

async function issue(
  dir: string,
  ca: string,
  name: string,
  cn: string,
  ext: string,
): Promise<{ certFile: string; keyFile: string }> {
  const f = (n: string) => path.join(dir, n);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(`${name}.key`)]);
  await openssl(['req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`)]);
  writeFileSync(f(`${name}.ext`), `${ext}\n`);
  await openssl([
    'x509',
    '-req',
    '-in',
    f(`${name}.csr`),
    '-CA',
    f(`${ca}.crt`),
    '-CAkey',
    f(`${ca}.key`),
    '-CAcreateserial',
    '-CAserial',
    f(`${ca}.srl`),
    '-days',
    '1',
    '-sha256',
    '-extfile',
    f(`${name}.ext`),
    '-out',
    f(`${name}.crt`),
  ]);
  return { certFile: f(`${name}.crt`), keyFile: f(`${name}.key`) };
}

async function client(dir: string, ca: string, file: string, cn: string): Promise<ClientCert> {
  const { certFile, keyFile } = await issue(
    dir,
    ca,
    file,
    cn,
    'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth',
  );
  return { name: cn, certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

/** Every certificate under dir/extender-pki, and the webhook's port. */
export async function makeExtenderTls(dir: string): Promise<ExtenderTls> {
  const pki = path.join(dir, 'extender-pki');
  mkdirSync(pki, { recursive: true });
  const names = shippedClientNames();
  await makeCa(pki, 'ca', 'hiatus-e2e-ca');
  await makeCa(pki, 'stranger-ca', 'hiatus-e2e-stranger-ca');
  const serving = await issue(
    pki,
    'ca',
    'tls',
    '127.0.0.1',
    'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1',
  );
  return {
    caFile: path.join(pki, 'ca.crt'),
    ca: readFileSync(path.join(pki, 'ca.crt')),
    ...serving,
    webhookPort: await freePort(),
    scheduler: await client(pki, 'ca', 'scheduler-client', names.scheduler),
    apiserver: await client(pki, 'ca', 'apiserver-webhook-client', names.apiserver),
    prometheus: await client(pki, 'ca', 'prometheus-client', 'hiatus-e2e-prometheus'),
    strangerScheduler: await client(pki, 'stranger-ca', 'stranger-scheduler-client', names.scheduler),
    strangerApiserver: await client(pki, 'stranger-ca', 'stranger-apiserver-client', names.apiserver),
  };
}

/**
 * Renews the serving certificate in place, as a renewed hiatus-tls Secret reaches the pods: a new
 * key and a certificate from the same CA, valid `days`, moved over the files the extender serves
 * (key first: the extender refuses the mismatched pair between the two renames and serves on with
 * what it had). Returns the new certificate, PEM.
 */
export async function renewServingCert(tls: ExtenderTls, days: number): Promise<Buffer> {
  const pki = path.dirname(tls.certFile);
  const f = (n: string) => path.join(pki, n);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('renewed.key')]);
  await openssl(['req', '-new', '-key', f('renewed.key'), '-subj', '/CN=127.0.0.1', '-out', f('renewed.csr')]);
  writeFileSync(
    f('renewed.ext'),
    'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n',
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    f('renewed.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAserial',
    f('ca.srl'),
    '-days',
    String(days),
    '-sha256',
    '-extfile',
    f('renewed.ext'),
    '-out',
    f('renewed.crt'),
  ]);
  const cert = readFileSync(f('renewed.crt'));
  renameSync(f('renewed.key'), tls.keyFile);
  renameSync(f('renewed.crt'), tls.certFile);
  return cert;
}

/** The extender flags that serve the verbs over TLS to kube-scheduler's certificate only, as deployed. */
export function extenderTlsArgs(tls: ExtenderTls): string[] {
  return [
    '--tls-cert-file',
    tls.certFile,
    '--tls-key-file',
    tls.keyFile,
    '--client-ca-file',
    tls.caFile,
    '--allowed-client-names',
    tls.scheduler.name,
  ];
}

/** The extender flags that serve the restore webhook to the API server's certificate only, as deployed. */
export function webhookArgs(tls: ExtenderTls): string[] {
  return [
    '--webhook-port',
    String(tls.webhookPort),
    '--webhook-tls-cert-file',
    tls.certFile,
    '--webhook-tls-key-file',
    tls.keyFile,
    '--webhook-client-ca-file',
    tls.caFile,
    '--webhook-allowed-client-names',
    tls.apiserver.name,
  ];
}

/**
 * kube-apiserver's --admission-control-config-file: MutatingAdmissionWebhook presents the
 * client certificate of the kubeconfig user named after the webhook's host:port (k8s.io/apiserver
 * pkg/util/webhook/authentication.go, defaultAuthenticationInfoResolver.clientConfig: exact
 * match first). deploy/certs.sh writes the same two files for hiatus.hiatus-system.svc:8443.
 */
/**
 * The ResourceQuota admission configuration of a cluster that limits the consumption of the
 * system-*-critical priority classes, as GKE does: a pod of such a class is admitted only in a
 * namespace with a ResourceQuota whose scope covers that class (upstream
 * staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go, limitedResources:
 * "insufficient quota to match these scopes"; Kubernetes' "Limit Priority Class consumption by
 * default").
 */
export const LIMITED_CRITICAL_PRIORITY_CLASSES = {
  name: 'ResourceQuota',
  configuration: {
    apiVersion: 'apiserver.config.k8s.io/v1',
    kind: 'ResourceQuotaConfiguration',
    limitedResources: [
      {
        resource: 'pods',
        matchScopes: [
          { scopeName: 'PriorityClass', operator: 'In', values: ['system-node-critical', 'system-cluster-critical'] },
        ],
      },
    ],
  },
};

export interface AdmissionOptions {
  /** Limit the system-*-critical priority classes to namespaces with a covering quota, as GKE does. */
  limitCriticalPriorityClasses?: boolean;
}

export function writeAdmissionConfig(dir: string, tls: ExtenderTls, o: AdmissionOptions = {}): string {
  const kubeconfig = path.join(dir, 'webhook-client.kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      users: [
        {
          name: `127.0.0.1:${tls.webhookPort}`,
          user: { 'client-certificate': tls.apiserver.certFile, 'client-key': tls.apiserver.keyFile },
        },
      ],
    }),
    { mode: 0o600 },
  );
  const config = path.join(dir, 'admission-config.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'AdmissionConfiguration',
      plugins: [
        {
          name: 'MutatingAdmissionWebhook',
          configuration: {
            apiVersion: 'apiserver.config.k8s.io/v1',
            kind: 'WebhookAdmissionConfiguration',
            kubeConfigFile: kubeconfig,
          },
        },
        ...(o.limitCriticalPriorityClasses ? [LIMITED_CRITICAL_PRIORITY_CLASSES] : []),
      ],
    }),
  );
  return config;
}
