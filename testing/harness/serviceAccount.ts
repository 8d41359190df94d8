// The shipped identities for the e2e tests: a file under deploy/ applied as shipped, and a
// kubeconfig with a token the TokenRequest API issued for one of its ServiceAccounts, so that a
// test runs with exactly the RBAC and admission policies an installation has.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ApiException,
  KubernetesObjectApi,
  loadAllYaml,
  type CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { writeKubeconfig, type ControlPlane, type KubeconfigEntry } from './controlPlane.js';
import { waitUntil } from './process.js';
import { repoRoot } from './schedulerConfig.js';

/** Creates every object of deploy/<file> but those of the kinds left out; returns what it created. */
export async function applyShipped(
  kc: KubeConfig,
  file: string,
  leaveOut: readonly string[] = [],
): Promise<KubernetesObject[]> {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const docs = loadAllYaml(readFileSync(path.join(repoRoot(), 'deploy', file), 'utf8')) as KubernetesObject[];
  const wanted = docs.filter((d) => !leaveOut.includes(d.kind!));
  for (const d of wanted) await objects.create(d);
  return wanted;
}

/**
 * A token of the ServiceAccount, bound to the pod if one is given: kube-apiserver then writes the
 * pod's node into it (`authentication.kubernetes.io/node-name`), as into a DaemonSet pod's own.
 */
export function serviceAccountToken(
  core: CoreV1Api,
  account: { namespace: string; name: string },
  pod?: { name: string; uid: string },
): Promise<string> {
  const boundObjectRef = pod ? { kind: 'Pod', apiVersion: 'v1', ...pod } : undefined;
  return waitUntil(`a token for ServiceAccount ${account.namespace}/${account.name}`, () =>
    core
      .createNamespacedServiceAccountToken({
        ...account,
        body: { spec: { audiences: [], expirationSeconds: 3600, ...(boundObjectRef ? { boundObjectRef } : {}) } },
      })
      .then((t) => t.status?.token),
  );
}

/**
 * Writes a kubeconfig with the control plane's cluster and this token to `file` (its context in
 * `namespace` if given); returns `file`.
 */
export function tokenKubeconfig(cp: ControlPlane, file: string, token: string, namespace?: string): string {
  const admin = JSON.parse(readFileSync(cp.kubeconfig('admin'), 'utf8')) as { clusters: [KubeconfigEntry] };
  writeKubeconfig(file, {
    context: 'token',
    cluster: admin.clusters[0],
    user: { name: 'token', user: { token } },
    ...(namespace ? { namespace } : {}),
  });
  return file;
}

/** The status and body of the API server's refusal of this request; throws when it was allowed. */
export async function refusal(request: Promise<unknown>): Promise<string> {
  try {
    await request;
  } catch (e) {
    if (!(e instanceof ApiException)) throw e;
    const body = typeof e.body === 'string' ? e.body : JSON.stringify(e.body);
    return `${e.code} ${body}`;
  }
  throw new Error('the API server allowed the request');
}

/**
 * The message of a ValidatingAdmissionPolicy's refusal of this request (the shipped policies
 * answer 403 Forbidden, so that a client reads a refusal, not a changed object); throws when the
 * request was allowed or refused otherwise.
 */
export async function policyRefusal(request: Promise<unknown>): Promise<string> {
  const why = await refusal(request);
  if (!why.startsWith('403 ') || !why.includes('ValidatingAdmissionPolicy')) {
    throw new Error(`not refused by a ValidatingAdmissionPolicy with 403: ${why.slice(0, 300)}`);
  }
  return why;
}
