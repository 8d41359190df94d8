// The restore admission webhook on the e2e control plane: the extender serves it with the
// control plane's extender certificates (extenderTls.ts) on the port the API server's admission
// configuration names, to the API server's client certificate only, and a
// MutatingWebhookConfiguration generated from deploy/webhook.yaml has the real kube-apiserver
// call it at https://127.0.0.1:<port>/mutate-pods.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1LabelSelectorRequirement,
  type V1MutatingWebhookConfiguration,
  type V1Pod,
} from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';
import { Rig, podSpec } from './cluster.js';
import { webhookArgs, type ExtenderTls } from './extenderTls.js';
import { httpGetStatus, waitUntil } from './process.js';
import { repoRoot } from './schedulerConfig.js';

export function webhookUrl(tls: ExtenderTls): string {
  return `https://127.0.0.1:${tls.webhookPort}/mutate-pods`;
}

/** Waits until the extender's webhook listener answers its /healthz over verified TLS. */
export async function waitWebhookServing(tls: ExtenderTls): Promise<void> {
  await waitUntil(
    `webhook at 127.0.0.1:${tls.webhookPort}`,
    async () => (await httpGetStatus(`https://127.0.0.1:${tls.webhookPort}/healthz`, { ca: tls.ca })) === 200,
  );
}

/**
 * deploy/webhook.yaml as shipped (rules, policies, selectors), except that the API server calls
 * url with caBundle instead of the in-cluster Service, and that the objectSelector also requires
 * `extraSelector` (so that only a scenario's own pods go through the webhook).
 */
export function restoreWebhookConfiguration(
  url: string,
  ca: Buffer,
  extraSelector: V1LabelSelectorRequirement[],
): V1MutatingWebhookConfiguration {
  // The file also holds the claim token's ValidatingAdmissionPolicy and its binding.
  const shipped = (
    loadAll(readFileSync(path.join(repoRoot(), 'deploy/webhook.yaml'), 'utf8')) as V1MutatingWebhookConfiguration[]
  ).find((d) => d.kind === 'MutatingWebhookConfiguration');
  if (shipped?.webhooks?.length !== 1) throw new Error('deploy/webhook.yaml: expected exactly one webhook');
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
  await waitUntil(
    'the API server calling the restore webhook',
    async () => {
      await core.createNamespacedPod({ namespace: probe.metadata!.namespace!, body: probe, dryRun: 'All' });
      return (await calls()) > before;
    },
    60_000,
    500,
  );
}

/**
 * A Rig (one scheduler profile) whose extender serves the restore webhook with `extraArgs`,
 * registered for pods labelled `label: on` and already called by the API server.
 */
export async function startRigWithWebhook(schedulerName: string, label: string, extraArgs: string[]): Promise<Rig> {
  const rig = await Rig.start({
    schedulers: [{ schedulerName }],
    extenderArgs: async (cp) => [...webhookArgs(cp.extenderTls), ...extraArgs],
  });
  const tls = rig.cp.extenderTls;
  await waitWebhookServing(tls);
  await registerWebhook(
    rig.cp.kc,
    restoreWebhookConfiguration(webhookUrl(tls), tls.ca, [{ key: label, operator: 'In', values: ['on'] }]),
  );
  const probe = podSpec('webhook-probe', { schedulerName });
  probe.metadata!.labels = { [label]: 'on' };
  await waitWebhookCalled(rig.cp.kc, probe, async () => rig.metric('hiatus_webhook_requests_total'));
  return rig;
}
