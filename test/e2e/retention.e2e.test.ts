// Issue 11, "What it must show": the retention race on the real control plane. A victim whose
// checkpoint is Ready is still there (its preemption is under way: the preemptor is pending), and
// records of made-up victims carrying its UID, newer than its own, push its workload past
// --retention-max-per-workload. Retention must delete those, never the victim's record, and the
// limit still holds for the rest. The extender runs as deploy/rbac.yaml's ServiceAccount (a
// token from the TokenRequest API), so the shipped least-privilege role is what it has: its log
// must show no request refused.
// Real etcd, kube-apiserver, kube-controller-manager (the ReplicaSet makes the victim); the built
// extender; no kube-scheduler or kubelet is needed, since nothing here schedules or checkpoints.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import type { Checkpoint } from '../../src/api/checkpoint.js';
import { ControlPlane } from '../../testing/harness/controlPlane.js';
import { BUILD_AND_START_MS, failureTracking } from '../../testing/harness/e2e.js';
import { Extender } from '../../testing/harness/extender.js';
import * as make from '../../testing/harness/make.js';
import { waitUntil } from '../../testing/harness/process.js';
import { applyShipped, serviceAccountToken, tokenKubeconfig } from '../../testing/harness/serviceAccount.js';

const NAMESPACE = 'default';
const MAX_PER_WORKLOAD = 2;

let cp: ControlPlane;
let ext: Extender | undefined;
let core: CoreV1Api;
let custom: CustomObjectsApi;
const { step, failed } = failureTracking();

/** deploy/rbac.yaml applied as is, and a kubeconfig with a token of its ServiceAccount. */
async function shippedServiceAccountKubeconfig(): Promise<string> {
  await core.createNamespace({ body: { metadata: { name: 'hiatus-system' } } });
  const docs = await applyShipped(cp.kc, 'rbac.yaml');
  const sa = docs.find((d) => d.kind === 'ServiceAccount')!.metadata!;
  const token = await serviceAccountToken(core, { namespace: sa.namespace!, name: sa.name! });
  return tokenKubeconfig(cp, path.join(mkdtempSync(path.join(cp.dir, 'sa-')), 'hiatus.kubeconfig'), token);
}

/** A Ready record of `victim`'s preemption by `preemptor`, completed that many minutes ago. */
const record = (
  name: string,
  victim: V1Pod,
  preemptor: { name: string; uid: string },
  completedMinutesAgo: number,
): Checkpoint =>
  make.record(name, victim, {
    reason: 'Preemption',
    preemptor,
    priority: 100,
    memoryBytes: 2 ** 30,
    restoreConstraints: { node: 'worker-1', arch: 'amd64', cpuFeatures: [], runtime: 'cri-o://1.31.2' },
    agoMs: completedMinutesAgo * 60_000,
  });

async function checkpointNames(): Promise<string[]> {
  const list = (await custom.listNamespacedCustomObject({
    group: 'hiatus.dev',
    version: 'v1alpha1',
    namespace: NAMESPACE,
    plural: 'checkpoints',
  })) as { items: Checkpoint[] };
  return list.items.map((c) => c.metadata.name).sort();
}

beforeAll(async () => {
  cp = await ControlPlane.start();
  try {
    await cp.applyCrd();
    core = cp.kc.makeApiClient(CoreV1Api);
    custom = cp.kc.makeApiClient(CustomObjectsApi);
    const kubeconfig = await shippedServiceAccountKubeconfig();
    ext = await Extender.start({
      kubeconfig,
      logDir: cp.logs,
      schedulerHttpTimeout: '5s',
      extraArgs: [
        '--retention-interval',
        '1s',
        '--retention-max-per-workload',
        String(MAX_PER_WORKLOAD),
        '--restore-reconcile-interval',
        '1s',
      ],
    });
  } catch (e) {
    process.stderr.write(`e2e setup failed; logs in ${cp.dir}\n${cp.tails()}\n`);
    await ext?.stop();
    await cp.stop({ keep: true });
    throw e;
  }
}, BUILD_AND_START_MS);

afterAll(async () => {
  if (failed())
    process.stderr.write(`e2e failed; logs kept in ${cp.dir}\n${cp.tails()}\n${ext?.proc.tail(80) ?? ''}\n`);
  await ext?.stop();
  await cp?.stop({ keep: failed() || process.env.HIATUS_E2E_KEEP === '1' });
});

describe("retention never deletes a live victim's record (issue 11)", () => {
  let victim: V1Pod;
  let preemptor: V1Pod;

  it(
    'has a victim of a ReplicaSet and a pending preemptor',
    step(async () => {
      const apps = cp.kc.makeApiClient(AppsV1Api);
      // No scheduler runs here: both pods stay Pending, which is all retention looks at (they exist).
      await apps.createNamespacedReplicaSet({
        namespace: NAMESPACE,
        body: {
          metadata: { name: 'trainer-5c8f7', labels: { app: 'trainer' } },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: 'trainer', 'pod-template-hash': '5c8f7' } },
            template: {
              metadata: { labels: { app: 'trainer', 'pod-template-hash': '5c8f7' } },
              spec: { containers: [{ name: 'main', image: 'hiatus-e2e/app:1' }] },
            },
          },
        },
      });
      victim = await waitUntil(
        "the ReplicaSet's pod",
        async () => (await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: 'app=trainer' })).items[0],
      );
      preemptor = await core.createNamespacedPod({
        namespace: NAMESPACE,
        body: { metadata: { name: 'urgent' }, spec: { containers: [{ name: 'main', image: 'hiatus-e2e/app:1' }] } },
      });
    }),
  );

  it(
    "keeps the victim's only record of its preemption while made-up records push its workload past the limit",
    step(async () => {
      // The real record is the oldest of the workload's; four records of made-up preemptions of the
      // same victim are newer (what forged preempt calls left in the issue).
      const real = record('trainer-real', victim, { name: 'urgent', uid: preemptor.metadata!.uid! }, 10);
      const forged = [1, 2, 3, 4].map((i) =>
        record(
          `trainer-forged-${i}`,
          victim,
          { name: `made-up-${i}`, uid: `00000000-0000-0000-0000-00000000000${i}` },
          i,
        ),
      );
      for (const c of [real, ...forged])
        await custom.createNamespacedCustomObject({
          group: 'hiatus.dev',
          version: 'v1alpha1',
          namespace: NAMESPACE,
          plural: 'checkpoints',
          body: c,
        });

      // Held: the real record (its preemptor is pending) and the victim's newest (it exists). They
      // fill the limit of 2, so the three other made-up records go.
      await waitUntil(
        'retention deleted the records over the limit',
        async () => ((await checkpointNames()).length === MAX_PER_WORKLOAD ? true : undefined),
        60_000,
        500,
      );
      expect(await checkpointNames()).toEqual(['trainer-forged-1', 'trainer-real']);
      // And it stays that way over further rounds (the interval is 1 s).
      await new Promise((r) => setTimeout(r, 4_000));
      expect(await checkpointNames()).toEqual(['trainer-forged-1', 'trainer-real']);
    }),
  );

  it(
    "keeps the victim's newest record once the preemption is over, for as long as the victim exists",
    step(async () => {
      await core.deleteNamespacedPod({ namespace: NAMESPACE, name: 'urgent', gracePeriodSeconds: 0 });
      await waitUntil('the preemptor gone', async () =>
        (await core.listNamespacedPod({ namespace: NAMESPACE, fieldSelector: 'metadata.name=urgent' })).items.length ===
        0
          ? true
          : undefined,
      );
      // Two records, two places: nothing is over the limit, so nothing goes.
      await new Promise((r) => setTimeout(r, 4_000));
      expect(await checkpointNames()).toEqual(['trainer-forged-1', 'trainer-real']);
    }),
  );

  it(
    'ran as the shipped ServiceAccount without a request refused',
    step(async () => {
      const log = readFileSync(path.join(cp.logs, 'hiatus-extender.log'), 'utf8');
      expect(log).toMatch(/checkpoint record deleted/);
      expect(log.split('\n').filter((l) => /forbidden/i.test(l))).toEqual([]);
    }),
  );
});
