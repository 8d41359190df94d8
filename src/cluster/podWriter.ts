// The two pod writes of restore placement, each a strategic merge patch carrying the pod's UID
// (the API server refuses a patch whose UID differs: a same-named successor is never touched).
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';

export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface PodPlacementWriter {
  /** Sets status.nominatedNodeName (pods/status). */
  nominate(pod: PodRef, node: string): Promise<void>;
  /** Removes one scheduling gate by name (pods), leaving any other gate in place. */
  liftGate(pod: PodRef, gate: string): Promise<void>;
}

/** The pod no longer exists: nothing left to place. */
export function isNotFound(e: unknown): boolean {
  return (e as { code?: number })?.code === 404;
}

export function podPlacementWriter(kc: KubeConfig): PodPlacementWriter {
  const core = kc.makeApiClient(CoreV1Api);
  const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
  return {
    async nominate(pod, node) {
      await core.patchNamespacedPodStatus(
        { namespace: pod.namespace, name: pod.name, body: { metadata: { uid: pod.uid }, status: { nominatedNodeName: node } } },
        strategic,
      );
    },
    async liftGate(pod, gate) {
      await core.patchNamespacedPod(
        { namespace: pod.namespace, name: pod.name, body: { metadata: { uid: pod.uid }, spec: { schedulingGates: [{ name: gate, $patch: 'delete' }] } } },
        strategic,
      );
    },
  };
}
