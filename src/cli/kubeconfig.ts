// Which cluster, user and namespace kubectl hiatus talks to, found as kubectl finds them:
// --kubeconfig, else $KUBECONFIG (a list: the first file that sets a current-context wins, files
// that do not exist are skipped), else the in-cluster service account, else ~/.kube/config;
// --context, else the current-context; -n, else the context's namespace, else "default".
// Every problem names the file and the entry that is wrong.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { CliError, type Connection } from './errors.js';
import { PooledKubeConfig } from '../cluster/pooledKubeConfig.js';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface Target {
  kc: KubeConfig;
  connection: Connection;
  namespace: string;
}

function loadFile(kc: KubeConfig, file: string): void {
  if (!existsSync(file)) throw new CliError(`kubeconfig ${file}: no such file`);
  try {
    kc.loadFromFile(file);
  } catch (e) {
    throw new CliError(`kubeconfig ${file}: cannot be read: ${(e as Error).message.split('\n')[0]}`);
  }
}

function load(explicit: string | undefined, env: NodeJS.ProcessEnv, home: string): { kc: KubeConfig; source: string } {
  const kc = new PooledKubeConfig();
  if (explicit) {
    loadFile(kc, explicit);
    return { kc, source: explicit };
  }
  if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(delimiter).filter(Boolean);
    const present = files.filter((f) => existsSync(f));
    if (present.length === 0) throw new CliError(`$KUBECONFIG names no file that exists (${files.join(delimiter)})`);
    loadFile(kc, present[0]!);
    for (const file of present.slice(1)) {
      const more = new KubeConfig();
      loadFile(more, file);
      const current = kc.currentContext;
      kc.mergeConfig(more, true);
      if (!current && more.currentContext) kc.setCurrentContext(more.currentContext);
    }
    return { kc, source: present.length === 1 ? present[0]! : `$KUBECONFIG (${present.join(delimiter)})` };
  }
  if (env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    kc.loadFromCluster();
    return { kc, source: 'the in-cluster service account' };
  }
  const file = join(home, '.kube', 'config');
  if (!existsSync(file)) {
    throw new CliError(`no kubeconfig: ${file} does not exist and $KUBECONFIG is not set (pass --kubeconfig PATH)`);
  }
  loadFile(kc, file);
  return { kc, source: file };
}

export function connect(
  o: { kubeconfig?: string; context?: string; namespace?: string },
  env: NodeJS.ProcessEnv,
  home = homedir(),
): Target {
  const { kc, source } = load(o.kubeconfig, env, home);
  const names = kc.getContexts().map((c) => c.name);
  const known = names.length ? names.join(', ') : 'none';
  if (o.context) {
    if (!kc.getContextObject(o.context))
      throw new CliError(`context "${o.context}" not found in ${source} (contexts: ${known})`);
    kc.setCurrentContext(o.context);
  }
  const contextName = kc.getCurrentContext();
  if (!contextName) throw new CliError(`${source} has no current-context; pass --context (contexts: ${known})`);
  const context = kc.getContextObject(contextName);
  if (!context)
    throw new CliError(`current-context "${contextName}" is not a context of ${source} (contexts: ${known})`);
  const cluster = kc.getCluster(context.cluster);
  if (!cluster)
    throw new CliError(
      `context "${contextName}" in ${source} names cluster "${context.cluster}", which ${source} does not define`,
    );
  if (context.user && !kc.getUser(context.user)) {
    throw new CliError(
      `context "${contextName}" in ${source} names user "${context.user}", which ${source} does not define`,
    );
  }
  return {
    kc,
    connection: { server: cluster.server, context: contextName, user: context.user, source },
    namespace: o.namespace ?? context.namespace ?? 'default',
  };
}
