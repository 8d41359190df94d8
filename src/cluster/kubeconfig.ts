import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { PooledKubeConfig } from './pooledKubeConfig.js';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Finds cluster credentials in client-go's order: an explicit path, $KUBECONFIG, in-cluster
 * service account, ~/.kube/config. Returns undefined when there are none, rather than
 * client-node's fallback to http://localhost:8080.
 */
export function findKubeConfig(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv,
): { kc: KubeConfig; source: string } | undefined {
  const kc = new PooledKubeConfig();
  if (explicit) {
    kc.loadFromFile(explicit);
    return { kc, source: explicit };
  }
  if (env.KUBECONFIG) {
    kc.loadFromDefault();
    return { kc, source: `$KUBECONFIG (${env.KUBECONFIG})` };
  }
  if (env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    kc.loadFromCluster();
    return { kc, source: 'in-cluster service account' };
  }
  const home = join(homedir(), '.kube', 'config');
  if (existsSync(home)) {
    kc.loadFromFile(home);
    return { kc, source: home };
  }
  return undefined;
}
