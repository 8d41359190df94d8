// A throw-away Kubernetes control plane on loopback, as e2e/k8s/start-local.sh starts it (same
// certificates, identities and flags), with free ports and any number of kube-scheduler instances.
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApiextensionsV1Api, CoreV1Api, KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { load } from 'js-yaml';
import { makeExtenderTls, writeAdmissionConfig, type AdmissionOptions, type ExtenderTls } from './extenderTls.js';
import { ManagedProcess, freePort, httpRequest, waitForHttp, waitUntil } from './process.js';
import { repoRoot, schedulerConfig, type SchedulerConfigOptions } from './schedulerConfig.js';
import { PooledKubeConfig } from '../../src/cluster/pooledKubeConfig.js';

const run = promisify(execFile);
const BUILD_TIMEOUT_MS = 40 * 60_000;

/** Runs e2e/k8s/build.sh (instant when cached) and returns the directory of the four binaries. */
export async function buildKubernetes(logFile: string): Promise<string> {
  const script = path.join(repoRoot(), 'e2e/k8s/build.sh');
  let stdout: string;
  try {
    ({ stdout } = await run('bash', [script], { timeout: BUILD_TIMEOUT_MS, maxBuffer: 64 << 20 }));
  } catch (e) {
    const err = e as Error & { stderr?: string };
    writeFileSync(logFile, err.stderr ?? '');
    throw new Error(
      `e2e/k8s/build.sh failed: ${err.message}\n${(err.stderr ?? '').split('\n').slice(-30).join('\n')}`,
      { cause: e },
    );
  }
  const bin = stdout.trim().split('\n').pop() ?? '';
  if (!bin) throw new Error('e2e/k8s/build.sh printed no bin directory');
  return bin;
}

export interface SchedulerInstance {
  schedulerName: string;
  proc: ManagedProcess;
  port: number;
}

type SchedulerSpec = Omit<SchedulerConfigOptions, 'kubeconfig'> & { schedulerName: string };

export class ControlPlane {
  readonly procs: ManagedProcess[] = [];
  readonly schedulers = new Map<string, SchedulerInstance>();
  readonly kc: KubeConfig;

  private constructor(
    readonly dir: string,
    readonly bin: string,
    readonly apiserverUrl: string,
    /** The extender's CA and certificates; the API server presents extenderTls.apiserver to the webhook. */
    readonly extenderTls: ExtenderTls,
    private readonly admission: AdmissionOptions = {},
  ) {
    this.kc = new PooledKubeConfig();
    this.kc.loadFromFile(this.kubeconfig('admin'));
  }

  kubeconfig(user: 'admin' | 'scheduler' | 'controller-manager'): string {
    return path.join(this.dir, 'kubeconfigs', `${user}.kubeconfig`);
  }

  get logs(): string {
    return path.join(this.dir, 'logs');
  }

  /** Builds (or reuses) the binaries, then starts etcd, kube-apiserver and kube-controller-manager. */
  static async start(admission: AdmissionOptions = {}): Promise<ControlPlane> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hiatus-e2e-'));
    for (const d of ['pki', 'kubeconfigs', 'logs', 'etcd-data']) mkdirSync(path.join(dir, d), { recursive: true });
    chmodSync(path.join(dir, 'etcd-data'), 0o700);
    const bin = await buildKubernetes(path.join(dir, 'logs', 'build.log'));
    // Certificates first (openssl takes seconds on a loaded machine), ports last: a port that
    // was free is free only until someone else binds it, outgoing connections included.
    await makePki(path.join(dir, 'pki'));
    const extenderTls = await makeExtenderTls(dir);
    const [etcdPort, etcdPeerPort, apiPort, kcmPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const apiserverUrl = `https://127.0.0.1:${apiPort}`;
    for (const user of ['admin', 'scheduler', 'controller-manager']) writeComponentKubeconfig(dir, user, apiserverUrl);
    const cp = new ControlPlane(dir, bin, apiserverUrl, extenderTls, admission);
    try {
      await cp.startCore(etcdPort, etcdPeerPort, apiPort, kcmPort);
    } catch (e) {
      await cp.stop();
      throw e;
    }
    return cp;
  }

  private spawn(name: string, binary: string, args: string[]): ManagedProcess {
    const proc = ManagedProcess.start(name, path.join(this.bin, binary), args, path.join(this.logs, `${name}.log`));
    this.procs.push(proc);
    this.spawnArgs.set(name, args);
    return proc;
  }

  private readonly spawnArgs = new Map<string, string[]>();

  /** Kills kube-apiserver (SIGKILL), leaves it down for downMs, then starts it again as it was. */
  async bounceApiserver(downMs: number): Promise<void> {
    const old = this.process('kube-apiserver');
    old.child.kill('SIGKILL');
    await old.exited;
    await new Promise((r) => setTimeout(r, downMs));
    const next = this.spawn('kube-apiserver', 'kube-apiserver', this.spawnArgs.get('kube-apiserver')!);
    await waitForHttp(next, `${this.apiserverUrl}/readyz`, this.adminTls());
  }

  private async startCore(etcdPort: number, etcdPeerPort: number, apiPort: number, kcmPort: number): Promise<void> {
    const pki = path.join(this.dir, 'pki');
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcd = this.spawn('etcd', 'etcd', [
      '--name=hiatus',
      `--data-dir=${path.join(this.dir, 'etcd-data')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=hiatus=${peerUrl}`,
      '--initial-cluster-state=new',
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ]);
    await waitForHttp(etcd, `${etcdUrl}/health`);

    // TaintNodesByCondition is off: it taints every new Node not-ready, and only the
    // node-lifecycle-controller (off below) would lift it.
    const apiserver = this.spawn('kube-apiserver', 'kube-apiserver', [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${path.join(this.dir, 'apiserver-certs')}`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      `--token-auth-file=${pki}/tokens.csv`,
      '--authorization-mode=Node,RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--disable-admission-plugins=TaintNodesByCondition',
      '--endpoint-reconciler-type=none',
      `--admission-control-config-file=${writeAdmissionConfig(this.dir, this.extenderTls, this.admission)}`,
    ]);
    await waitForHttp(apiserver, `${this.apiserverUrl}/readyz`, this.adminTls());

    // node-lifecycle-controller is off: with no kubelet it would mark the API-created Nodes
    // Ready=Unknown and taint them unreachable after the grace period.
    const kc = this.kubeconfig('controller-manager');
    const kcm = this.spawn('kube-controller-manager', 'kube-controller-manager', [
      `--kubeconfig=${kc}`,
      `--authentication-kubeconfig=${kc}`,
      `--authorization-kubeconfig=${kc}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      '--leader-elect=false',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${pki}/sa.key`,
      `--root-ca-file=${pki}/ca.crt`,
      `--cluster-signing-cert-file=${pki}/ca.crt`,
      `--cluster-signing-key-file=${pki}/ca.key`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--controllers=*,-node-lifecycle-controller',
    ]);
    await waitForHttp(kcm, `https://127.0.0.1:${kcmPort}/healthz`, { insecure: true });
    // The ServiceAccount admission plugin rejects pods until the namespace's "default" exists.
    const core = this.kc.makeApiClient(CoreV1Api);
    await waitUntil('the default ServiceAccount', () =>
      core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' }),
    );
  }

  /** The admin identity's client certificate and the cluster CA, for raw HTTPS clients. */
  adminTls(): { ca: Buffer; cert: Buffer; key: Buffer } {
    const pki = path.join(this.dir, 'pki');
    return {
      ca: readFileSync(`${pki}/ca.crt`),
      cert: readFileSync(`${pki}/admin.crt`),
      key: readFileSync(`${pki}/admin.key`),
    };
  }

  /** Creates the Checkpoint CRD from deploy/crd.yaml and waits until it is Established. */
  async applyCrd(): Promise<void> {
    const body = load(readFileSync(path.join(repoRoot(), 'deploy/crd.yaml'), 'utf8')) as V1CustomResourceDefinition;
    const api = this.kc.makeApiClient(ApiextensionsV1Api);
    await api.createCustomResourceDefinition({ body });
    const name = body.metadata!.name!;
    await waitUntil(`CRD ${name} Established`, async () => {
      const crd = await api.readCustomResourceDefinition({ name });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    });
  }

  /** Starts one kube-scheduler with a configuration generated from scheduler-config/. */
  async startScheduler(spec: SchedulerSpec): Promise<SchedulerInstance> {
    const file = path.join(this.dir, `scheduler-${spec.schedulerName}.yaml`);
    // An HTTPS extender is the one this control plane's certificates serve: kube-scheduler
    // presents its client certificate, as deploy/'s scheduler-config does.
    const tls = this.extenderTls;
    const extenderClient = spec.extenderUrl?.startsWith('https:')
      ? { caFile: tls.caFile, certFile: tls.scheduler.certFile, keyFile: tls.scheduler.keyFile }
      : undefined;
    writeFileSync(
      file,
      schedulerConfig({
        ...spec,
        kubeconfig: this.kubeconfig('scheduler'),
        ...(extenderClient ? { extenderClient } : {}),
      }),
    );
    const port = await freePort();
    const kc = this.kubeconfig('scheduler');
    const proc = this.spawn(`kube-scheduler-${spec.schedulerName}`, 'kube-scheduler', [
      `--config=${file}`,
      `--authentication-kubeconfig=${kc}`,
      `--authorization-kubeconfig=${kc}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      '--leader-elect=false',
      // Its /metrics without credentials, on loopback (benchmarks read its client's rate limiter
      // and scheduling attempts from it).
      '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
      // Diagnosis: HIATUS_SCHEDULER_V=5 logs the scheduling queue's moves and the events behind them.
      ...(process.env.HIATUS_SCHEDULER_V ? [`--v=${process.env.HIATUS_SCHEDULER_V}`] : []),
    ]);
    await waitForHttp(proc, `https://127.0.0.1:${port}/readyz`, { insecure: true });
    const instance = { schedulerName: spec.schedulerName, proc, port };
    this.schedulers.set(spec.schedulerName, instance);
    return instance;
  }

  /** One kube-scheduler instance's /metrics (Prometheus text). */
  async schedulerMetrics(schedulerName: string): Promise<string> {
    const s = this.schedulers.get(schedulerName);
    if (!s) throw new Error(`no scheduler ${schedulerName}`);
    const r = await httpRequest(`https://127.0.0.1:${s.port}/metrics`, { insecure: true });
    if (r.status !== 200) throw new Error(`kube-scheduler ${schedulerName} /metrics: HTTP ${r.status}`);
    return r.text;
  }

  /** Stops one kube-scheduler instance; the others and the control plane keep running. */
  async stopScheduler(schedulerName: string): Promise<void> {
    const s = this.schedulers.get(schedulerName);
    if (!s) throw new Error(`no scheduler ${schedulerName}`);
    this.schedulers.delete(schedulerName);
    await s.proc.stop();
  }

  /** The running process of a core component, e.g. "etcd" or "kube-apiserver". */
  process(name: string): ManagedProcess {
    const p = this.procs.find((q) => q.name === name && q.alive);
    if (!p) throw new Error(`no running ${name}`);
    return p;
  }

  /** The last lines of every component's log. */
  tails(lines = 30): string {
    return this.procs.map((p) => p.tail(lines)).join('\n');
  }

  /** Stops everything, last started first; removes the directory unless keep. */
  async stop(opts: { keep?: boolean } = {}): Promise<void> {
    for (const p of [...this.procs].reverse()) await p.stop();
    if (!opts.keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

// --------------------------------------------------------------------- PKI, as start-local.sh

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args);
}

async function newKey(file: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

async function sign(pki: string, name: string, subject: string, ext: string): Promise<void> {
  await newKey(`${pki}/${name}.key`);
  await openssl(['req', '-new', '-key', `${pki}/${name}.key`, '-subj', subject, '-out', `${pki}/${name}.csr`]);
  writeFileSync(`${pki}/${name}.ext`, `${ext}\n`);
  await openssl([
    'x509',
    '-req',
    '-in',
    `${pki}/${name}.csr`,
    '-CA',
    `${pki}/ca.crt`,
    '-CAkey',
    `${pki}/ca.key`,
    '-CAcreateserial',
    '-CAserial',
    `${pki}/ca.srl`,
    '-days',
    '3650',
    '-sha256',
    '-extfile',
    `${pki}/${name}.ext`,
    '-out',
    `${pki}/${name}.crt`,
  ]);
  rmSync(`${pki}/${name}.csr`);
  rmSync(`${pki}/${name}.ext`);
}

async function makePki(pki: string): Promise<void> {
  await newKey(`${pki}/ca.key`);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    `${pki}/ca.key`,
    '-sha256',
    '-days',
    '3650',
    '-subj',
    '/CN=hiatus-e2e-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    '-out',
    `${pki}/ca.crt`,
  ]);
  const client = 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth';
  await sign(
    pki,
    'apiserver',
    '/CN=kube-apiserver',
    'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,' +
      'DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
  );
  // Identities the RBAC bootstrap policy knows: system:masters is cluster-admin.
  await sign(pki, 'admin', '/O=system:masters/CN=hiatus-admin', client);
  await sign(pki, 'scheduler', '/CN=system:kube-scheduler', client);
  await sign(pki, 'controller-manager', '/CN=system:kube-controller-manager', client);
  rmSync(`${pki}/ca.srl`, { force: true });
  await newKey(`${pki}/sa.key`);
  await openssl(['pkey', '-in', `${pki}/sa.key`, '-pubout', '-out', `${pki}/sa.pub`]);
  const token = (await run('openssl', ['rand', '-hex', '24'])).stdout.trim();
  writeFileSync(`${pki}/tokens.csv`, `${token},hiatus-admin-token,hiatus-admin-token,"system:masters"\n`, {
    mode: 0o600,
  });
}

function writeComponentKubeconfig(dir: string, user: string, server: string): void {
  const b64 = (f: string) => readFileSync(path.join(dir, 'pki', f)).toString('base64');
  writeKubeconfig(path.join(dir, 'kubeconfigs', `${user}.kubeconfig`), {
    context: 'hiatus',
    cluster: { name: 'hiatus', cluster: { server, 'certificate-authority-data': b64('ca.crt') } },
    user: {
      name: user,
      user: { 'client-certificate-data': b64(`${user}.crt`), 'client-key-data': b64(`${user}.key`) },
    },
  });
}

/** A kubeconfig's cluster or user entry: its name and the fields kubectl reads. */
export interface KubeconfigEntry {
  name: string;
  [field: string]: unknown;
}

/**
 * Writes a kubeconfig (JSON, readable by its owner only) of one cluster and one user, and one
 * context of that name joining them, in `namespace` if given.
 */
export function writeKubeconfig(
  file: string,
  o: { context: string; cluster: KubeconfigEntry; user: KubeconfigEntry; namespace?: string },
): void {
  const context = { cluster: o.cluster.name, user: o.user.name, ...(o.namespace ? { namespace: o.namespace } : {}) };
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [o.cluster],
    users: [o.user],
    contexts: [{ name: o.context, context }],
    'current-context': o.context,
  };
  writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
}
