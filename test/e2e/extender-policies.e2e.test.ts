// The admission policies shipped with the extender's RBAC, on the real kube-apiserver. RBAC can
// grant a verb on a resource but not "only these fields of these pods", so each broad verb comes
// with a ValidatingAdmissionPolicy that narrows it to what the extender writes:
// - deploy/rbac.yaml's `patch pods/status` (it could rewrite any pod's IPs, phase, Ready condition,
//   labels): only status.nominatedNodeName and the DisruptionTarget condition;
// - deploy/rbac-placement-gate.yaml's `patch pods` (it could rewrite any pod's image, labels or
//   gates): only lifting hiatus's own scheduling gate of a restore pod that gate holds, with the
//   checkpoint's images and the hiatus.dev/ restore annotations.
// And deploy/webhook.yaml's policy on the restore claim's token (hiatus.dev/restore-claim): no one
// changes it after creation, nor creates a pod with it past the webhook's objectSelector. The
// file's MutatingWebhookConfiguration is applied too, with no extender behind it: the webhook
// unreachable, as failurePolicy Ignore lets pods through.
// The allowed writes are made by the extender's own writer (src/cluster/podWriter.ts: nominate,
// evict, liftGate with src/restore/publication.ts imageOps) with a token of the shipped
// ServiceAccount; then what a compromised extender could try is refused. Real etcd,
// kube-apiserver and kube-controller-manager; nothing here is scheduled, so no kubelet or
// extender process is needed.
import { describe, expect, it } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_RESTORE_CLAIM, GATE_RESTORE_PLACEMENT } from '../../src/api/keys.js';
import { podPlacementWriter, type PodPlacementWriter, type PreemptionWriter } from '../../src/cluster/podWriter.js';
import { pointer } from '../../src/restore/jsonPatch.js';
import { imageOps } from '../../src/restore/publication.js';
import { controlPlanePerFile } from '../../testing/harness/e2e.js';
import { waitUntil } from '../../testing/harness/process.js';
import {
  applyShipped,
  policyRefusal,
  refusal,
  serviceAccountToken,
  tokenKubeconfig,
} from '../../testing/harness/serviceAccount.js';

const NAMESPACE = 'default';
const OTHER_GATE = 'example.com/quota';
const IMAGE = `registry.example:5000/hiatus/${NAMESPACE}@sha256:${'b'.repeat(64)}`;
const CONSTRAINTS = 'hiatus.dev/restore-constraints';

let core: CoreV1Api;
/** The extender's ServiceAccount's view: its pod writer, and raw patches as a compromised extender would send. */
let hiatus: { writer: PodPlacementWriter & PreemptionWriter; core: CoreV1Api };

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const json = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
/** Merges containers by name (a merge patch would replace the list, which pod validation refuses first). */
const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
const evilImage = { spec: { containers: [{ name: 'main', image: 'evil:1' }] } };

function pod(name: string, gates: string[]): V1Pod {
  return {
    metadata: {
      name,
      labels: { app: 'trainer' },
      annotations: { [CONSTRAINTS]: JSON.stringify({ node: 'worker-1', sourceOnly: true }), team: 'ml' },
    },
    spec: {
      schedulingGates: gates.map((name) => ({ name })),
      containers: [{ name: 'main', image: 'trainer:1.0' }],
    },
  };
}

const ref = (p: V1Pod) => ({ namespace: NAMESPACE, name: p.metadata!.name!, uid: p.metadata!.uid! });
const create = (p: V1Pod) => core.createNamespacedPod({ namespace: NAMESPACE, body: p });
const read = (name: string) => core.readNamespacedPod({ namespace: NAMESPACE, name });
const patchAsHiatus = (name: string, body: object, as = merge) =>
  hiatus.core.patchNamespacedPod({ namespace: NAMESPACE, name, body }, as);
const patchStatusAsHiatus = (name: string, body: object) =>
  hiatus.core.patchNamespacedPodStatus({ namespace: NAMESPACE, name, body }, strategic);

const { step } = controlPlanePerFile(async (cp) => {
  core = cp.kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'hiatus-system' } } });
  await applyShipped(cp.kc, 'rbac.yaml');
  await applyShipped(cp.kc, 'rbac-placement-gate.yaml');
  await applyShipped(cp.kc, 'webhook.yaml');
  const token = await serviceAccountToken(core, { namespace: 'hiatus-system', name: 'hiatus' });
  const kc = new KubeConfig();
  kc.loadFromFile(tokenKubeconfig(cp, path.join(mkdtempSync(path.join(cp.dir, 'sa-')), 'hiatus.kubeconfig'), token));
  hiatus = { writer: podPlacementWriter(kc), core: kc.makeApiClient(CoreV1Api) };
  // A policy is enforced once kube-apiserver has loaded it, a moment after its creation.
  await create(pod('policy-probe', []));
  const label = () => ({ metadata: { labels: { probe: String(Date.now()) } } });
  const claimToken = () => ({ metadata: { annotations: { [ANNOTATION_RESTORE_CLAIM]: String(Date.now()) } } });
  await waitUntil('the policies enforced', async () => {
    const [gate = '', status = '', claim = ''] = await Promise.all(
      [
        patchAsHiatus('policy-probe', label()),
        patchStatusAsHiatus('policy-probe', label()),
        core.patchNamespacedPod({ namespace: NAMESPACE, name: 'policy-probe', body: claimToken() }, merge),
      ].map((r) => refusal(r).catch(() => '')),
    );
    return (
      gate.includes('scheduling gate holds') && status.includes("no pod's labels") && claim.includes('restore-claim')
    );
  });
});

describe("rbac.yaml's policy: pods/status only for a nomination and the DisruptionTarget condition", () => {
  it(
    "lets the extender's writer nominate a node and mark a victim before deleting it",
    step(async () => {
      const preemptor = await create(pod('preemptor', []));
      await hiatus.writer.nominate(ref(preemptor), 'worker-1');
      expect((await read('preemptor')).status!.nominatedNodeName).toBe('worker-1');
      const victim = await create(pod('victim', []));
      // evict marks the DisruptionTarget condition (pods/status), then deletes with a UID precondition.
      expect(await hiatus.writer.evict(ref(victim), 'preempted by default/preemptor')).toBe('evicted');
      await waitUntil('the victim gone', () =>
        read('victim').then(
          () => false,
          () => true,
        ),
      );
    }),
  );

  it(
    'refuses any other change a compromised extender could make through pods/status',
    step(async () => {
      await create(pod('serving', []));
      const tries: [string, object, RegExp][] = [
        [
          'pod IP',
          { status: { podIP: '10.0.0.66', podIPs: [{ ip: '10.0.0.66' }] } },
          /nominatedNodeName and DisruptionTarget condition/,
        ],
        ['phase', { status: { phase: 'Running' } }, /nominatedNodeName and DisruptionTarget condition/],
        [
          'Ready condition',
          { status: { conditions: [{ type: 'Ready', status: 'True' }] } },
          /no pod condition but DisruptionTarget/,
        ],
        ['label', { metadata: { labels: { app: 'frontend' } } }, /no pod's labels, annotations or finalizers/],
        ['annotation', { metadata: { annotations: { team: 'other' } } }, /no pod's labels, annotations or finalizers/],
      ];
      for (const [what, body, why] of tries) {
        expect([what, await policyRefusal(patchStatusAsHiatus('serving', body))]).toEqual([
          what,
          expect.stringMatching(why),
        ]);
      }
      const serving = await read('serving');
      expect(serving.status?.podIP).toBeUndefined();
      expect(serving.status?.conditions?.find((c) => c.type === 'Ready')).toBeUndefined();
      expect(serving.metadata!.labels).toEqual({ app: 'trainer' });
    }),
  );
});

describe("the placement gate's policy: patch pods only for hiatus's own held restore pods", () => {
  it(
    "lets the extender's writer lift its gate of a held pod, with the checkpoint's image and constraints",
    step(async () => {
      const held = await create(pod('held', [GATE_RESTORE_PLACEMENT]));
      const ops = [
        ...imageOps(['main'], new Map([['main', IMAGE]]), true),
        { op: 'replace' as const, path: `/metadata/annotations/${pointer(CONSTRAINTS)}`, value: '{"node":"worker-1"}' },
      ];
      expect(await hiatus.writer.liftGate(ref(held), GATE_RESTORE_PLACEMENT, 0, ops)).toBe(true);
      const lifted = await read('held');
      expect(lifted.spec!.schedulingGates ?? []).toEqual([]);
      expect(lifted.spec!.containers[0]!.image).toBe(IMAGE);
      expect(lifted.metadata!.annotations).toMatchObject({ [CONSTRAINTS]: '{"node":"worker-1"}', team: 'ml' });
      // Lifted, it is no longer hiatus's to change.
      expect(await policyRefusal(patchAsHiatus('held', evilImage, strategic))).toMatch(
        /its hiatus.dev\/restore-placement scheduling gate holds/,
      );
    }),
  );

  it(
    'lifts its own gate and keeps another controller’s, on a pod held by both',
    step(async () => {
      const both = await create(pod('both', [GATE_RESTORE_PLACEMENT, OTHER_GATE]));
      // Another controller's gate: refused, whatever else the patch does.
      expect(
        await policyRefusal(patchAsHiatus('both', [{ op: 'remove', path: '/spec/schedulingGates/1' }], json)),
      ).toMatch(/may lift only its own scheduling gate/);
      expect(await hiatus.writer.liftGate(ref(both), GATE_RESTORE_PLACEMENT, 0)).toBe(true);
      expect((await read('both')).spec!.schedulingGates).toEqual([{ name: OTHER_GATE }]);
    }),
  );

  it(
    'refuses what a compromised extender could try on any other pod or field',
    step(async () => {
      // A pod no gate of hiatus's holds (here not running, which changes nothing for the policy).
      await create(pod('bystander', []));
      expect(await policyRefusal(patchAsHiatus('bystander', evilImage, strategic))).toMatch(
        /its hiatus.dev\/restore-placement scheduling gate holds/,
      );
      // A pod another controller holds: not hiatus's either.
      await create(pod('quota-held', [OTHER_GATE]));
      expect(
        await policyRefusal(patchAsHiatus('quota-held', [{ op: 'remove', path: '/spec/schedulingGates/0' }], json)),
      ).toMatch(/its hiatus.dev\/restore-placement scheduling gate holds/);
      // Its own held pod: no label, no annotation outside hiatus.dev/, no scheduling directive
      // (kube-apiserver itself lets a gated pod's node selector and affinity change).
      await create(pod('held-again', [GATE_RESTORE_PLACEMENT]));
      const tries: [string, object, RegExp][] = [
        ['label', { metadata: { labels: { app: 'other' } } }, /no label and no annotation outside hiatus.dev\//],
        [
          'annotation',
          { metadata: { annotations: { team: 'other' } } },
          /no label and no annotation outside hiatus.dev\//,
        ],
        [
          'node selector',
          { spec: { nodeSelector: { 'kubernetes.io/hostname': 'worker-9' } } },
          /container images and its own gate and annotations only/,
        ],
      ];
      for (const [what, body, why] of tries) {
        expect([what, await policyRefusal(patchAsHiatus('held-again', body))]).toEqual([
          what,
          expect.stringMatching(why),
        ]);
      }
      // Nothing above changed the pods.
      const bystander = await read('bystander');
      const quotaHeld = await read('quota-held');
      const heldAgain = await read('held-again');
      expect(bystander.spec!.containers[0]!.image).toBe('trainer:1.0');
      expect(quotaHeld.spec!.schedulingGates).toEqual([{ name: OTHER_GATE }]);
      expect(heldAgain.metadata!.labels).toEqual({ app: 'trainer' });
      expect(heldAgain.spec!.nodeSelector).toBeUndefined();
    }),
  );
});

describe("deploy/webhook.yaml's policy: the restore claim's token is the webhook's alone", () => {
  const withToken = (name: string, labels: Record<string, string> = {}, gates: string[] = []): V1Pod => {
    const p = pod(name, gates);
    p.metadata!.labels = { ...p.metadata!.labels, ...labels };
    p.metadata!.annotations = { ...p.metadata!.annotations, [ANNOTATION_RESTORE_CLAIM]: 'copied-from-a-restore-pod' };
    return p;
  };
  const patchAsUser = (name: string, body: object) =>
    core.patchNamespacedPod({ namespace: NAMESPACE, name, body }, merge);
  const patchStatusAsUser = (name: string, body: object) =>
    core.patchNamespacedPodStatus({ namespace: NAMESPACE, name, body }, strategic);

  it(
    'refuses adding, changing or removing the token after creation, through the pod or its status, by anyone',
    step(async () => {
      await create(pod('plain', []));
      // Held by hiatus's gate: the placement gate's policy lets the extender change its hiatus.dev/
      // annotations, but not this one.
      await create(withToken('carrier', {}, [GATE_RESTORE_PLACEMENT]));
      const tries: [string, () => Promise<unknown>][] = [
        ['add', () => patchAsUser('plain', { metadata: { annotations: { [ANNOTATION_RESTORE_CLAIM]: 'forged' } } })],
        [
          'change',
          () => patchAsUser('carrier', { metadata: { annotations: { [ANNOTATION_RESTORE_CLAIM]: 'forged' } } }),
        ],
        ['remove', () => patchAsUser('carrier', { metadata: { annotations: { [ANNOTATION_RESTORE_CLAIM]: null } } })],
        [
          'add through pods/status',
          () => patchStatusAsUser('plain', { metadata: { annotations: { [ANNOTATION_RESTORE_CLAIM]: 'forged' } } }),
        ],
        [
          'change as the extender',
          () => patchAsHiatus('carrier', { metadata: { annotations: { [ANNOTATION_RESTORE_CLAIM]: 'forged' } } }),
        ],
      ];
      for (const [what, request] of tries) {
        expect([what, await policyRefusal(request())]).toEqual([what, expect.stringMatching(/cannot be changed/)]);
      }
      expect((await read('plain')).metadata!.annotations![ANNOTATION_RESTORE_CLAIM]).toBeUndefined();
      expect((await read('carrier')).metadata!.annotations![ANNOTATION_RESTORE_CLAIM]).toBe(
        'copied-from-a-restore-pod',
      );
      // Any other change is not this policy's business.
      await patchAsUser('carrier', { metadata: { labels: { tier: 'batch' } } });
      expect((await read('carrier')).metadata!.labels).toMatchObject({ tier: 'batch' });
    }),
  );

  it(
    'refuses creating a pod with a token that opts out of the webhook, and lets one through while the webhook is unreachable',
    step(async () => {
      expect(await policyRefusal(create(withToken('opted-out', { 'hiatus.dev/restore': 'false' })))).toMatch(
        /skips the restore webhook and may not carry hiatus.dev\/restore-claim/,
      );
      // failurePolicy Ignore: created as written. Such a copy puts the token on two pods, and the
      // lifecycle loop then binds neither (test/restore/claimToken.test.ts).
      await create(withToken('while-webhook-down'));
      expect((await read('while-webhook-down')).metadata!.annotations![ANNOTATION_RESTORE_CLAIM]).toBe(
        'copied-from-a-restore-pod',
      );
    }),
  );
});
