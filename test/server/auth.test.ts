// Client authentication on both listeners, with the certificates deploy/certs.sh issues: the
// verbs take kube-scheduler's certificate only, the webhook the API server's, /metrics any
// certificate of the CA, the probes anyone. A second run of certs.sh is another CA that signs
// the very same names: its certificates must be refused. A refused request never reaches the
// verb or the webhook.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { load, loadAll } from 'js-yaml';
import { NodeFactsCache } from '../../src/cluster/nodeFactsCache.js';
import { SnapshotView } from '../../testing/snapshotView.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { WebhookAnswer } from '../../src/restore/webhook.js';
import { createHandler, createWebhookApp } from '../../src/server/app.js';
import { clientCertificateOptions, type CallerPolicy } from '../../src/server/auth.js';
import { httpRequest, type Reply } from '../../testing/harness/process.js';
import { plainPod } from '../helpers/objects.js';
import { certsSh, type Pki } from '../helpers/pki.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function listen(server: https.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let tmp: string;
let pki: Pki;
let stranger: Pki;
let metrics: Metrics;
let extender: https.Server;
let webhook: https.Server;
let extenderUrl: string;
let webhookUrl: string;
const verbCalls: string[] = [];
const reviews: unknown[] = [];

const deployment = () => {
  const docs = readFileSync(path.join(ROOT, 'deploy/deployment.yaml'), 'utf8')
    .split(/^---$/m)
    .map((d) => load(d) as { kind?: string; spec?: { template: { spec: { containers: { args: string[] }[] } } } });
  return docs.find((d) => d?.kind === 'Deployment')!.spec!.template.spec.containers[0]!.args;
};
const argValue = (flag: string) =>
  deployment()
    .find((a) => a.startsWith(`--${flag}=`))!
    .split('=')[1]!;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'hiatus-auth-'));
  [pki, stranger] = await Promise.all([certsSh(path.join(tmp, 'pki')), certsSh(path.join(tmp, 'stranger'))]);
  metrics = new Metrics({ defaultMetrics: false });
  const view = new SnapshotView();
  // The names the shipped Deployment allows.
  const verbs: CallerPolicy = {
    expected: 'kube-scheduler',
    caFlag: '--client-ca-file',
    required: true,
    allowedNames: [argValue('allowed-client-names')],
  };
  const hooks: CallerPolicy = {
    expected: 'the API server',
    caFlag: '--webhook-client-ca-file',
    required: true,
    allowedNames: [argValue('webhook-allowed-client-names')],
  };
  const serving = {
    cert: pki.read('tls.crt'),
    key: pki.read('tls.key'),
    ...clientCertificateOptions(pki.read('ca.crt')),
  };
  extender = https.createServer(
    serving,
    createHandler({
      ctx: { view, nodeFacts: new NodeFactsCache(10), metrics, strict: false, zoneScore: 5 },
      view,
      metrics,
      log: silentLogger,
      maxBodyBytes: 1 << 20,
      preempt: () => {
        verbCalls.push('preempt');
        return { status: 200, body: { NodeNameToMetaVictims: {} }, path: 'fast', result: 'success' };
      },
      verbCallers: verbs,
      metricsCallers: { ...verbs, expected: 'a client', allowedNames: [] },
    }),
  );
  webhook = https.createServer(
    serving,
    createWebhookApp({
      mutatePods: async (body): Promise<WebhookAnswer> => {
        reviews.push(body);
        return {
          status: 200,
          body: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u', allowed: true } },
          result: 'skipped',
          why: 'test',
        };
      },
      metrics,
      log: silentLogger,
      maxBodyBytes: 1 << 20,
      callers: hooks,
    }),
  );
  [extenderUrl, webhookUrl] = await Promise.all([listen(extender), listen(webhook)]);
}, 60_000);

afterAll(async () => {
  for (const s of [extender, webhook]) {
    s?.closeAllConnections();
    await new Promise((r) => s?.close(r));
  }
  rmSync(tmp, { recursive: true, force: true });
});

/** A client: none, or the certificate and key NAME.crt/NAME.key of a PKI. The server is verified against pki's CA. */
function as(from: Pki | null, name?: string) {
  const server = { ca: pki.read('ca.crt'), servername: 'hiatus.hiatus-system.svc' };
  return from && name ? { ...server, cert: from.read(`${name}.crt`), key: from.read(`${name}.key`) } : server;
}

const preemptBody = JSON.stringify({
  Pod: plainPod(),
  NodeNameToVictims: null,
  NodeNameToMetaVictims: { 'node-1': { Pods: [{ UID: 'a-real-victims-uid' }], NumPDBViolations: 0 } },
});

async function refusals(reason: string, listener = 'extender'): Promise<number> {
  return (
    (await metrics.callersRefused.get()).values.find(
      (v) => v.labels.reason === reason && v.labels.listener === listener,
    )?.value ?? 0
  );
}

type From = 'pki' | 'stranger' | null;

describe('the extender listener', () => {
  it.each<[string, From, string | undefined, number, string, RegExp]>([
    [
      'no client certificate',
      null,
      undefined,
      401,
      'no_certificate',
      /a client certificate is required: only kube-scheduler, with a certificate signed by the CA of --client-ca-file/,
    ],
    [
      'the same name signed by another CA',
      'stranger',
      'scheduler-client',
      401,
      'untrusted_certificate',
      /client certificate not accepted/,
    ],
    [
      "the API server's certificate",
      'pki',
      'apiserver-webhook-client',
      403,
      'name_not_allowed',
      /"kube-apiserver-webhook-client" is not one of the names allowed to call this \(system:kube-scheduler\)/,
    ],
    [
      "Prometheus' certificate",
      'pki',
      'prometheus-client',
      403,
      'name_not_allowed',
      /"hiatus-metrics-reader" is not one of the names/,
    ],
    [
      'the serving certificate (not for client authentication)',
      'pki',
      'tls',
      401,
      'untrusted_certificate',
      /client certificate not accepted/,
    ],
  ])('refuses a forged preempt with %s before reading it', async (_what, from, name, status, reason, message) => {
    const before = await refusals(reason);
    const r = await httpRequest(`${extenderUrl}/preempt`, {
      method: 'POST',
      body: preemptBody,
      ...as(from === 'stranger' ? stranger : from === 'pki' ? pki : null, name),
    });
    expect(r.status).toBe(status);
    expect(JSON.parse(r.text)).toEqual({ NodeNameToMetaVictims: null, Error: expect.stringMatching(message) });
    expect(await refusals(reason)).toBe(before + 1);
    expect(verbCalls).toEqual([]);
  });

  it("serves kube-scheduler's certificate on every verb", async () => {
    const scheduler = as(pki, 'scheduler-client');
    const filter = await httpRequest(`${extenderUrl}/filter`, {
      method: 'POST',
      body: JSON.stringify({ Pod: plainPod(), Nodes: null, NodeNames: ['a'] }),
      ...scheduler,
    });
    expect(filter.status).toBe(200);
    expect(JSON.parse(filter.text)).toMatchObject({ NodeNames: ['a'] });
    const prioritize = await httpRequest(`${extenderUrl}/prioritize`, {
      method: 'POST',
      body: JSON.stringify({ Pod: plainPod(), Nodes: null, NodeNames: ['a'] }),
      ...scheduler,
    });
    expect(prioritize).toEqual({ status: 200, text: '[]' });
    const preempt = await httpRequest(`${extenderUrl}/preempt`, { method: 'POST', body: preemptBody, ...scheduler });
    expect(preempt.status).toBe(200);
    expect(verbCalls).toEqual(['preempt']);
    verbCalls.length = 0;
  });

  it('refuses filter and prioritize with the error body kube-scheduler decodes', async () => {
    const body = JSON.stringify({ Pod: plainPod(), Nodes: null, NodeNames: ['a'] });
    const filter = await httpRequest(`${extenderUrl}/filter`, { method: 'POST', body, ...as(null) });
    expect(filter.status).toBe(401);
    expect(Object.keys(JSON.parse(filter.text) as object)).toEqual([
      'Nodes',
      'NodeNames',
      'FailedNodes',
      'FailedAndUnresolvableNodes',
      'Error',
    ]);
    const prioritize = await httpRequest(`${extenderUrl}/prioritize`, {
      method: 'POST',
      body,
      ...as(stranger, 'scheduler-client'),
    });
    expect(prioritize.status).toBe(401);
  });

  it("lets Prometheus' certificate (any the CA signed) read /metrics, and nobody without one", async () => {
    const scraped = await httpRequest(`${extenderUrl}/metrics`, as(pki, 'prometheus-client'));
    expect(scraped.status).toBe(200);
    expect(scraped.text).toContain('hiatus_callers_refused_total{listener="extender",reason="no_certificate"}');
    expect((await httpRequest(`${extenderUrl}/metrics`, as(null))).status).toBe(401);
    expect((await httpRequest(`${extenderUrl}/metrics`, as(stranger, 'prometheus-client'))).status).toBe(401);
  });

  it('answers the probes without a certificate', async () => {
    for (const probe of ['/healthz', '/readyz'])
      expect((await httpRequest(`${extenderUrl}${probe}`, as(null))).status).toBe(200);
  });
});

describe('the webhook listener', () => {
  const review = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u', operation: 'CREATE', namespace: 'default', object: plainPod() },
  });

  it.each<[string, From, string | undefined, number, string]>([
    ['no client certificate', null, undefined, 401, 'no_certificate'],
    ['the same name signed by another CA', 'stranger', 'apiserver-webhook-client', 401, 'untrusted_certificate'],
    ["kube-scheduler's certificate", 'pki', 'scheduler-client', 403, 'name_not_allowed'],
  ])('refuses an AdmissionReview with %s before reading it', async (_what, from, name, status, reason) => {
    const before = await refusals(reason, 'webhook');
    const r: Reply = await httpRequest(`${webhookUrl}/mutate-pods`, {
      method: 'POST',
      body: review,
      ...as(from === 'stranger' ? stranger : from === 'pki' ? pki : null, name),
    });
    expect(r.status).toBe(status);
    expect((JSON.parse(r.text) as { error: string }).error).toMatch(
      status === 401
        ? /CA of --webhook-client-ca-file|not accepted/
        : /not one of the names allowed to call this \(kube-apiserver-webhook-client\)/,
    );
    expect(await refusals(reason, 'webhook')).toBe(before + 1);
    expect(reviews).toEqual([]);
  });

  it("serves the API server's certificate, and the probe without one", async () => {
    const r = await httpRequest(`${webhookUrl}/mutate-pods`, {
      method: 'POST',
      body: review,
      ...as(pki, 'apiserver-webhook-client'),
    });
    expect(r.status).toBe(200);
    expect(reviews).toHaveLength(1);
    expect((await httpRequest(`${webhookUrl}/healthz`, as(null))).status).toBe(200);
  });
});

describe('deploy/certs.sh', () => {
  it('writes an admission configuration whose kubeconfig gives the API server its webhook client certificate for the Service', () => {
    const config = load(readFileSync(pki.file('admission-config.yaml'), 'utf8')) as {
      apiVersion: string;
      kind: string;
      plugins: { name: string; configuration: { apiVersion: string; kind: string; kubeConfigFile: string } }[];
    };
    expect(config).toMatchObject({ apiVersion: 'apiserver.config.k8s.io/v1', kind: 'AdmissionConfiguration' });
    expect(config.plugins).toEqual([
      {
        name: 'MutatingAdmissionWebhook',
        configuration: {
          apiVersion: 'apiserver.config.k8s.io/v1',
          kind: 'WebhookAdmissionConfiguration',
          kubeConfigFile: '/etc/kubernetes/hiatus/webhook-client.kubeconfig',
        },
      },
    ]);
    const kubeconfig = load(readFileSync(pki.file('webhook-client.kubeconfig'), 'utf8')) as {
      users: { name: string; user: Record<string, string> }[];
    };
    // deploy/webhook.yaml's Service and port, as the API server resolves them.
    const hook = (
      loadAll(readFileSync(path.join(ROOT, 'deploy/webhook.yaml'), 'utf8')) as {
        kind: string;
        webhooks: { clientConfig: { service: { name: string; namespace: string; port: number } } }[];
      }[]
    ).find((d) => d.kind === 'MutatingWebhookConfiguration')!;
    const svc = hook.webhooks[0]!.clientConfig.service;
    expect(kubeconfig.users.map((u) => u.name)).toEqual([`${svc.name}.${svc.namespace}.svc:${svc.port}`]);
    expect(Buffer.from(kubeconfig.users[0]!.user['client-certificate-data']!, 'base64')).toEqual(
      pki.read('apiserver-webhook-client.crt'),
    );
    expect(Buffer.from(kubeconfig.users[0]!.user['client-key-data']!, 'base64')).toEqual(
      pki.read('apiserver-webhook-client.key'),
    );
  });

  it('keeps an existing CA when run again, so that issued certificates stay valid', async () => {
    const ca = pki.read('ca.crt');
    await certsSh(pki.dir);
    expect(pki.read('ca.crt')).toEqual(ca);
  });
});
