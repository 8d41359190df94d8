import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';

/** Posts an Event on a pod, as `kubectl describe pod` shows them. */
export type PodEventPoster = (
  namespace: string,
  pod: string,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
) => Promise<void>;

export function podEventPoster(kc: KubeConfig, component: string): PodEventPoster {
  const core = kc.makeApiClient(CoreV1Api);
  return async (namespace, pod, type, reason, message) => {
    const now = new Date();
    await core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${pod}.`, namespace },
        involvedObject: { kind: 'Pod', namespace, name: pod, apiVersion: 'v1' },
        reason,
        message,
        type,
        source: { component },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  };
}
