// Pod Security admission on the real kube-apiserver: every workload `kubectl apply -k deploy/`
// creates must be admitted in the namespace it is shipped in. A Deployment or DaemonSet whose pods
// break its namespace's enforced standard is created without complaint (kube-apiserver only
// warns about a template); the controller's pod creates are what it refuses, so the workload just
// runs no pod. Here each workload's pod template is created as a pod, dry run, in its namespace,
// after the kustomization's Namespaces and ServiceAccounts, as the ReplicaSet or DaemonSet
// controller would create it. Nothing is scheduled, so no kubelet or extender process is needed.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  CoreV1Api,
  KubernetesObjectApi,
  loadAllYaml,
  type KubernetesObject,
  type V1DaemonSet,
  type V1Deployment,
  type V1Pod,
  type V1ResourceQuota,
} from '@kubernetes/client-node';
import { controlPlanePerFile } from '../../testing/harness/e2e.js';
import { sleep, waitUntil } from '../../testing/harness/process.js';
import { refusal } from '../../testing/harness/serviceAccount.js';
import { repoRoot } from '../../testing/harness/schedulerConfig.js';

let core: CoreV1Api;

/** Every document of the files deploy/kustomization.yaml lists, as `kubectl apply -k deploy/` reads them. */
function kustomization(): KubernetesObject[] {
  const dir = path.join(repoRoot(), 'deploy');
  const k = loadAllYaml(readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8'))[0] as { resources: string[] };
  return k.resources.flatMap((f) => loadAllYaml(readFileSync(path.join(dir, f), 'utf8')) as KubernetesObject[]);
}

const shipped = kustomization();
const workloads = shipped.filter((o): o is V1Deployment | V1DaemonSet => ['Deployment', 'DaemonSet'].includes(o.kind!));

/** The pod a workload's controller creates from its template, in `namespace`. */
function podOf(w: V1Deployment | V1DaemonSet, namespace = w.metadata!.namespace!): V1Pod {
  return {
    metadata: { generateName: `${w.metadata!.name}-`, namespace, labels: w.spec!.template.metadata?.labels ?? {} },
    spec: w.spec!.template.spec!,
  };
}

/**
 * Creates the pod, dry run. The ServiceAccount admission plugin reads accounts from a cache that
 * may not have the account created a moment ago: only that refusal is tried again; any other
 * refusal is the API server's answer, thrown as it came.
 */
async function admit(pod: V1Pod): Promise<V1Pod> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await core.createNamespacedPod({ namespace: pod.metadata!.namespace!, body: pod, dryRun: 'All' });
    } catch (e) {
      const body = (e as { body?: unknown }).body;
      const missingAccount = /serviceaccount/i.test(typeof body === 'string' ? body : JSON.stringify(body ?? ''));
      if (!missingAccount || attempt === 40) throw e;
      await sleep(250);
    }
  }
}

const quotas = shipped.filter((o): o is V1ResourceQuota => o.kind === 'ResourceQuota');

// kube-apiserver here limits the system-*-critical priority classes as GKE does
// (LIMITED_CRITICAL_PRIORITY_CLASSES): a pod of such a class is admitted only in a namespace with a
// ResourceQuota covering its class, which the kustomization ships beside each namespace.
const { step } = controlPlanePerFile(
  async (plane) => {
    core = plane.kc.makeApiClient(CoreV1Api);
    const objects = KubernetesObjectApi.makeApiClient(plane.kc);
    for (const o of shipped.filter((o) => o.kind === 'Namespace')) await objects.create(o);
    for (const o of shipped.filter((o) => o.kind === 'ServiceAccount')) await objects.create(o);
    for (const q of quotas) await objects.create(q);
    // ResourceQuota admission refuses pods a quota covers until kube-controller-manager's quota
    // controller has written the quota's status ("status unknown for quota").
    for (const q of quotas) {
      await waitUntil(`ResourceQuota ${q.metadata!.namespace}/${q.metadata!.name} counted`, async () => {
        const live = await core.readNamespacedResourceQuota({
          namespace: q.metadata!.namespace!,
          name: q.metadata!.name!,
        });
        return live.status?.hard?.pods !== undefined;
      });
    }
  },
  { limitCriticalPriorityClasses: true },
);

describe('Pod Security: every shipped workload runs in the namespace it is shipped in', () => {
  it('ships the extender and the node agent', () => {
    expect(workloads.map((w) => `${w.kind}/${w.metadata!.namespace}/${w.metadata!.name}`).sort()).toEqual([
      'DaemonSet/hiatus-agent/hiatus-agent',
      'Deployment/hiatus-system/hiatus',
    ]);
  });

  it.each(workloads.map((w) => [`${w.kind} ${w.metadata!.name}`, w] as const))(
    "admits the %s's pods in its namespace",
    async (_name, w) => {
      await step(async () => {
        const created = await admit(podOf(w));
        expect(created.metadata!.namespace).toBe(w.metadata!.namespace);
      })();
    },
  );

  it('ships a quota covering the priority class of each workload, in its namespace', () => {
    for (const w of workloads) {
      const priorityClass = w.spec!.template.spec!.priorityClassName;
      const covering = quotas.filter(
        (q) =>
          q.metadata!.namespace === w.metadata!.namespace &&
          q.spec!.scopeSelector!.matchExpressions!.some(
            (e) => e.scopeName === 'PriorityClass' && e.operator === 'In' && e.values!.includes(priorityClass!),
          ),
      );
      expect([w.metadata!.name, covering.length]).toEqual([w.metadata!.name, 1]);
    }
  });

  it(
    'refuses a critical pod in a namespace without a covering quota, as GKE does (so the admissions above needed the shipped quotas)',
    step(async () => {
      const extender = workloads.find((w) => w.kind === 'Deployment')!;
      await core.createNamespace({ body: { metadata: { name: 'no-quota' } } });
      const account = extender.spec!.template.spec!.serviceAccountName!;
      await core.createNamespacedServiceAccount({ namespace: 'no-quota', body: { metadata: { name: account } } });
      const why = await refusal(admit(podOf(extender, 'no-quota')));
      // Upstream answers it as a plain error (controller.go returns fmt.Errorf, not a Forbidden).
      expect(why).toContain('insufficient quota to match these scopes');
    }),
  );

  it(
    "refuses the node agent's pods in the extender's namespace, which enforces the restricted standard",
    step(async () => {
      const agent = workloads.find((w) => w.kind === 'DaemonSet')!;
      // Its account there too, so that what refuses it is Pod Security, not the missing account.
      const account = agent.spec!.template.spec!.serviceAccountName!;
      await core.createNamespacedServiceAccount({ namespace: 'hiatus-system', body: { metadata: { name: account } } });
      const why = await refusal(admit(podOf(agent, 'hiatus-system')));
      expect(why.slice(0, 4)).toBe('403 ');
      const message = (JSON.parse(why.slice(4)) as { message: string }).message;
      expect(message).toContain('violates PodSecurity "restricted:latest"');
      expect(message).toContain('restricted volume type "hostPath"');
    }),
  );
});
