// The restore admission webhook on the e2e control plane: a private CA and a serving certificate
// for 127.0.0.1 (openssl, in the control plane's directory), the extender flags that serve it,
// and a MutatingWebhookConfiguration generated from deploy/webhook.yaml that the real
// kube-apiserver calls at https://127.0.0.1:<port>/mutate-pods.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1LabelSelectorRequirement,
  type V1MutatingWebhookConfiguration,
  type V1Pod,
} from '@kubernetes/client-node';
import { load } from 'js-yaml';
import { Rig, podSpec } from './cluster.js';
import { freePort, httpGetStatus, waitUntil } from './process.js';
import { repoRoot } from './schedulerConfig.js';

const run = promisify(execFile);

export interface WebhookTls {
  port: number;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The CA certificate, PEM. */
  ca: Buffer;
}

/** A CA and a serving certificate for IP:127.0.0.1 under dir/webhook-pki, and a free port. */
export async function makeWebhookTls(dir: string): Promise<WebhookTls> {
  const pki = path.join(dir, 'webhook-pki');
  mkdirSync(pki, { recursive: true });
  const f = (n: string) => path.join(pki, n);
  const openssl = (args: string[]) => run('openssl', args);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('ca.key')]);
  await openssl([
    'req', '-x509', '-new', '-key', f('ca.key'), '-sha256', '-days', '1', '-subj', '/CN=hiatus-e2e-webhook-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-out', f('ca.crt'),
  ]);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('tls.key')]);
  await openssl(['req', '-new', '-key', f('tls.key'), '-subj', '/CN=127.0.0.1', '-out', f('tls.csr')]);
  writeFileSync(f('tls.ext'), 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n');
  await openssl([
    'x509', '-req', '-in', f('tls.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-CAserial', f('ca.srl'), '-days', '1', '-sha256', '-extfile', f('tls.ext'), '-out', f('tls.crt'),
  ]);
  return { port: await freePort(), caFile: f('ca.crt'), certFile: f('tls.crt'), keyFile: f('tls.key'), ca: readFileSync(f('ca.crt')) };
}

/** The extender flags that serve the webhook with tls. */
export function webhookArgs(tls: WebhookTls): string[] {
  return ['--webhook-port', String(tls.port), '--webhook-tls-cert-file', tls.certFile, '--webhook-tls-key-file', tls.keyFile];
}

export function webhookUrl(tls: WebhookTls): string {
  return `https://127.0.0.1:${tls.port}/mutate-pods`;
}

/** Waits until the extender's webhook listener answers its /healthz over verified TLS. */
export async function waitWebhookServing(tls: WebhookTls): Promise<void> {
  await waitUntil(`webhook at 127.0.0.1:${tls.port}`, async () => (await httpGetStatus(`https://127.0.0.1:${tls.port}/healthz`, { ca: tls.ca })) === 200);
}

/**
 * deploy/webhook.yaml as shipped (rules, policies, selectors), except that the API server calls
 * url with caBundle instead of the in-cluster Service, and that the objectSelector also requires
 * `extraSelector` (so that only a scenario's own pods go through the webhook).
 */
export function restoreWebhookConfiguration(url: string, ca: Buffer, extraSelector: V1LabelSelectorRequirement[]): V1MutatingWebhookConfiguration {
  const shipped = load(readFileSync(path.join(repoRoot(), 'deploy/webhook.yaml'), 'utf8')) as V1MutatingWebhookConfiguration;
  if (shipped.webhooks?.length !== 1) throw new Error('deploy/webhook.yaml: expected exactly one webhook');
  return {
    ...shipped,
    webhooks: shipped.webhooks.map((w) => ({
      ...w,
      clientConfig: { url, caBundle: ca.toString('base64') },
      objectSelector: { matchExpressions: [...(w.objectSelector?.matchExpressions ?? []), ...extraSelector] },
    })),
  };
}

export async function registerWebhook(kc: KubeConfig, body: V1MutatingWebhookConfiguration): Promise<void> {
  await kc.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({ body });
}

/**
 * The API server picks up a new webhook configuration asynchronously: dry-run creates of
 * probe (sideEffects NoneOnDryRun lets the API server call the webhook for them) until
 * calls() grows.
 */
export async function waitWebhookCalled(kc: KubeConfig, probe: V1Pod, calls: () => Promise<number>): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const before = await calls();
  await waitUntil('the API server calling the restore webhook', async () => {
    await core.createNamespacedPod({ namespace: probe.metadata!.namespace!, body: probe, dryRun: 'All' });
    return (await calls()) > before;
  }, 60_000, 500);
}

/**
 * A Rig (one scheduler profile) whose extender serves the restore webhook with `extraArgs`,
 * registered for pods labelled `label: on` and already called by the API server.
 */
export async function startRigWithWebhook(schedulerName: string, label: string, extraArgs: string[]): Promise<Rig> {
  let tls: WebhookTls | undefined;
  const rig = await Rig.start({
    schedulers: [{ schedulerName }],
    extenderArgs: async (cp) => {
      tls = await makeWebhookTls(cp.dir);
      return [...webhookArgs(tls), ...extraArgs];
    },
  });
  await waitWebhookServing(tls!);
  await registerWebhook(rig.cp.kc, restoreWebhookConfiguration(webhookUrl(tls!), tls!.ca, [{ key: label, operator: 'In', values: ['on'] }]));
  const probe = podSpec('webhook-probe', { schedulerName });
  probe.metadata!.labels = { [label]: 'on' };
  await waitWebhookCalled(rig.cp.kc, probe, async () => rig.metric('hiatus_webhook_requests_total'));
  return rig;
}
