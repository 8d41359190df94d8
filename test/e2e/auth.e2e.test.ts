// Issue 11, "Only kube-scheduler can drive preemption": the forged calls that dumped a pod's
// memory and claimed checkpoints, sent again to the extender as deployed (HTTPS, client CA,
// allowed names) on the real control plane. Without a client certificate, with a certificate
// of another CA (bearing the very names the extender allows) or with the other component's
// certificate, each is refused before its body is read, and nothing is dumped, evicted or
// claimed: no kubelet call, no Checkpoint, the pods untouched. In the same cluster kube-scheduler,
// presenting its certificate from scheduler-config/'s tlsConfig, still preempts through the
// extender, and the API server, presenting its certificate from its admission configuration,
// still reaches the webhook.
import { describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import type { V1Pod } from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { NAMESPACE, Rig, podSpec } from '../../testing/harness/cluster.js';
import { SCHEDULER, inGroup, rigPerFile } from '../../testing/harness/e2e.js';
import { renewServingCert, type ClientCert, type ExtenderTls } from '../../testing/harness/extenderTls.js';
import * as make from '../../testing/harness/make.js';
import { httpRequest, waitUntil, type Reply } from '../../testing/harness/process.js';
import { startRigWithWebhook, webhookUrl } from '../../testing/harness/webhook.js';

const WEBHOOK_LABEL = 'e2e.hiatus.dev/auth-webhook';

let rig: Rig;
let db: V1Pod;

const step = rigPerFile(
  () => startRigWithWebhook(SCHEDULER, WEBHOOK_LABEL, ['--restore-reconcile-interval', '1s']),
  async (started) => {
    rig = started;
    // The real tenant pod of the issue: high priority, no checkpoint policy (Never by default).
    await rig.createPriorityClass('auth-critical', 100_000);
    await rig.createPriorityClass('auth-required', 100, { 'hiatus.dev/checkpoint-policy': 'Required' });
    await rig.createPriorityClass('auth-urgent', 1000);
    await rig.nodes.add(make.node('auth-db', 'db'));
    await rig.nodes.add(make.node('auth-train', 'train'));
  },
);

/** Who calls: nobody's certificate, another CA's with an allowed name, or a certificate of the wrong role. */
function callers(): [string, ClientCert | null, number, string][] {
  const tls = rig.cp.extenderTls;
  return [
    ['without a client certificate', null, 401, 'no_certificate'],
    ["with another CA's certificate named as kube-scheduler", tls.strangerScheduler, 401, 'untrusted_certificate'],
    ["with the API server's certificate", tls.apiserver, 403, 'name_not_allowed'],
  ];
}

async function refused(listener: string, reason: string): Promise<number> {
  return rig.metric('hiatus_callers_refused_total', { listener, reason });
}

/** Nothing dumped or evicted: no kubelet call on db's node, no Checkpoint, db running as it was. */
async function nothingHappenedTo(pod: V1Pod): Promise<void> {
  expect(rig.nodes.sim('auth-db').calls).toEqual([]);
  expect(await rig.checkpointsOf(pod.metadata!.name!)).toEqual([]);
  const now = await rig.pod(pod.metadata!.name!);
  expect(now?.metadata?.uid).toBe(pod.metadata!.uid);
  expect(now?.metadata?.deletionTimestamp).toBeUndefined();
  expect(now?.status?.phase).toBe('Running');
  expect(rig.nodes.deletionSeenAt.has(`${NAMESPACE}/${pod.metadata!.name}`)).toBe(false);
}

describe('forged calls from callers other than kube-scheduler and the API server', () => {
  it(
    "runs the tenant's database pod",
    step(async () => {
      await rig.createPod(
        podSpec('db', {
          schedulerName: SCHEDULER,
          priorityClassName: 'auth-critical',
          cpu: '3',
          nodeSelector: inGroup('db'),
        }),
      );
      expect(await rig.waitRunning('db')).toBe('auth-db');
      db = (await rig.pod('db'))!;
    }),
  );

  it(
    'refuses forged preempt calls naming it, before reading them: nothing dumped',
    step(async () => {
      // NodeNameToVictims: the name of the real pod, an invented UID, a Required policy written by the caller.
      const forgedVictim = {
        ...db,
        metadata: {
          ...db.metadata,
          uid: 'f0f0f0f0-0000-4000-8000-000000000000',
          annotations: { 'hiatus.dev/checkpoint-policy': 'Required' },
        },
      };
      const preemptor = {
        metadata: { name: 'nobody', namespace: NAMESPACE, uid: 'f1f1f1f1-0000-4000-8000-000000000000' },
        spec: { priority: 0, containers: [{ name: 'c' }] },
      };
      const full = {
        Pod: preemptor,
        NodeNameToMetaVictims: null,
        NodeNameToVictims: { 'auth-db': { Pods: [forgedVictim], NumPDBViolations: 0 } },
      };
      // NodeNameToMetaVictims: the real UID, for a "preemptor" of priority 0.
      const meta = {
        Pod: preemptor,
        NodeNameToVictims: null,
        NodeNameToMetaVictims: { 'auth-db': { Pods: [{ UID: db.metadata!.uid }], NumPDBViolations: 0 } },
      };
      for (const [who, cert, status, reason] of callers()) {
        const before = await refused('extender', reason);
        for (const body of [full, meta]) {
          const r = await rig.ext!.request('POST', '/preempt', body, cert);
          expect({ who, status: r.status }).toEqual({ who, status });
          expect(JSON.parse(r.text)).toEqual({ NodeNameToMetaVictims: null, Error: expect.any(String) });
        }
        expect(await refused('extender', reason)).toBe(before + 2);
      }
      // 25 at once, as in the issue.
      const storm = await Promise.all(
        Array.from({ length: 25 }, () => rig.ext!.request('POST', '/preempt', meta, null)),
      );
      expect(storm.map((r) => r.status)).toEqual(Array(25).fill(401));
      expect(await rig.metric('hiatus_preemption_attempts_total')).toBe(0);
      await nothingHappenedTo(db);
    }),
  );

  it(
    'still preempts for kube-scheduler, which presents its certificate: a Required victim checkpointed, then evicted',
    step(async () => {
      const pod = podSpec('ledger', {
        schedulerName: SCHEDULER,
        priorityClassName: 'auth-required',
        cpu: '3',
        nodeSelector: inGroup('train'),
      });
      // No webhook label: the ReplicaSet's replacement is not offered the checkpoint by the API server.
      const body = make.deployment('ledger', make.template('ledger', pod, false));
      await rig.apps.createNamespacedDeployment({ namespace: NAMESPACE, body });
      const victim = await waitUntil('the ledger pod Running', async () => {
        const pods = (await rig.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: 'app=ledger' })).items;
        return pods.find((p) => p.status?.phase === 'Running');
      });
      await rig.createPod(
        podSpec('urgent', {
          schedulerName: SCHEDULER,
          priorityClassName: 'auth-urgent',
          cpu: '2',
          nodeSelector: inGroup('train'),
        }),
      );
      expect(await rig.waitRunning('urgent', 90_000)).toBe('auth-train');
      const [ck, ...more] = await waitUntil('the ledger pod checkpointed', async () => {
        const found = await rig.checkpointsOf(victim.metadata!.name!);
        return found.some((c) => c.status?.phase === 'Ready') ? found : undefined;
      });
      expect(more).toEqual([]);
      expect(ck!.spec.source.pod.uid).toBe(victim.metadata!.uid);
      expect(await refused('extender', 'no_certificate')).toBe(25 + 1 * 2);
      await nothingHappenedTo(db);
    }),
  );

  it(
    'refuses a forged AdmissionReview for a pod that never existed, before reading it: nothing claimed',
    step(async () => {
      const [ck] = (await rig.checkpoints()).filter((c) => c.spec.reason === 'Preemption') as [Checkpoint];
      const owner = ck.spec.source.owner!;
      const review = JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'f2f2f2f2-0000-4000-8000-000000000000',
          kind: { group: '', version: 'v1', kind: 'Pod' },
          resource: { group: '', version: 'v1', resource: 'pods' },
          namespace: NAMESPACE,
          operation: 'CREATE',
          dryRun: false,
          object: {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: {
              name: 'ghost',
              namespace: NAMESPACE,
              uid: 'f3f3f3f3-0000-4000-8000-000000000000',
              labels: { app: 'ledger', 'pod-template-hash': ck.spec.source.templateHash },
              ownerReferences: [
                { apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: owner.uid, controller: true },
              ],
            },
            spec: { schedulerName: SCHEDULER, containers: [{ name: 'main', image: 'hiatus-e2e/app:1' }] },
          },
        },
      });
      const tls = rig.cp.extenderTls;
      const post = (cert: ClientCert | null): Promise<Reply> =>
        httpRequest(webhookUrl(tls), {
          method: 'POST',
          body: review,
          ca: tls.ca,
          ...(cert ? { cert: cert.cert, key: cert.key } : {}),
        });
      const reviewsBefore = await rig.metric('hiatus_webhook_requests_total');
      const webhookCallers: [string, ClientCert | null, number, string][] = [
        ['without a client certificate', null, 401, 'no_certificate'],
        ["with another CA's certificate named as the API server", tls.strangerApiserver, 401, 'untrusted_certificate'],
        ["with kube-scheduler's certificate", tls.scheduler, 403, 'name_not_allowed'],
      ];
      for (const [who, cert, status, reason] of webhookCallers) {
        const before = await refused('webhook', reason);
        const r = await post(cert);
        expect({ who, status: r.status }).toEqual({ who, status });
        expect(await refused('webhook', reason)).toBe(before + 1);
      }
      expect(await rig.metric('hiatus_webhook_requests_total')).toBe(reviewsBefore);
      const after = (await rig.checkpoints()).find((c) => c.metadata.name === ck.metadata.name)!;
      expect(after.status?.phase).toBe('Ready');
      expect(after.status?.restore).toBeUndefined();

      // The refusals are the certificates' doing: the same review from the API server's
      // certificate is served, and claims the checkpoint (released later: the pod never appears).
      const admitted = await post(tls.apiserver);
      expect(admitted.status).toBe(200);
      expect((JSON.parse(admitted.text) as { response: { patch?: string } }).response.patch).toBeDefined();
      const claimed = (await rig.checkpoints()).find((c) => c.metadata.name === ck.metadata.name)!;
      expect(claimed.status?.phase).toBe('Restoring');
      await nothingHappenedTo(db);
    }),
  );
});

/** The certificate a listener on 127.0.0.1:port presents to a new connection. */
function presented(port: number, tls: ExtenderTls, as: ClientCert): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: tls.ca, cert: as.cert, key: as.key }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(new X509Certificate(raw));
    });
    socket.on('error', reject);
  });
}

describe('a renewed serving certificate, as cert-manager renews the hiatus-tls Secret', () => {
  it(
    'is served by both listeners within seconds, without a restart, and kube-scheduler and the API server go on calling',
    step(async () => {
      const tls = rig.cp.extenderTls;
      const pid = rig.ext!.proc.child.pid;
      const before = new X509Certificate(readFileSync(tls.certFile));
      expect((await presented(rig.ext!.port, tls, tls.scheduler)).fingerprint256).toBe(before.fingerprint256);
      const expiryBefore = await rig.metric('hiatus_tls_certificate_expiry_timestamp_seconds', {
        listener: 'extender',
      });
      expect(expiryBefore).toBe(Math.floor(Date.parse(before.validTo) / 1000));

      const renewed = new X509Certificate(await renewServingCert(tls, 30));
      expect(renewed.fingerprint256).not.toBe(before.fingerprint256);
      await waitUntil(
        'both listeners serving the renewed certificate',
        async () =>
          (await presented(rig.ext!.port, tls, tls.scheduler)).fingerprint256 === renewed.fingerprint256 &&
          (await presented(tls.webhookPort, tls, tls.apiserver)).fingerprint256 === renewed.fingerprint256,
        30_000,
      );
      for (const listener of ['extender', 'webhook']) {
        expect(await rig.metric('hiatus_tls_certificate_expiry_timestamp_seconds', { listener })).toBe(
          Math.floor(Date.parse(renewed.validTo) / 1000),
        );
      }
      // The same process: no restart.
      expect(rig.ext!.proc.child.exitCode).toBeNull();
      expect(rig.ext!.proc.child.pid).toBe(pid);

      // kube-scheduler filters a restore pod through the extender (the marker resource it manages)
      // and the API server sends it the pod's admission review: both still reach it.
      const filtered = await rig.metric('hiatus_extender_requests_total', { verb: 'filter' });
      const reviewed = await rig.metric('hiatus_webhook_requests_total');
      await rig.createPod(
        podSpec('after-renewal', {
          schedulerName: SCHEDULER,
          asRestorePod: true,
          cpu: '10m',
          labels: { [WEBHOOK_LABEL]: 'on' },
        }),
      );
      expect(await rig.waitRunning('after-renewal')).toBeDefined();
      expect(await rig.metric('hiatus_extender_requests_total', { verb: 'filter' })).toBeGreaterThan(filtered);
      expect(await rig.metric('hiatus_webhook_requests_total')).toBeGreaterThan(reviewed);
    }),
  );
});
