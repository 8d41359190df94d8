// The kubelet simulator's options and the shapes it reports (pods, containers, injected
// failures, checkpoint calls).
import type { Logger } from '../../src/log.js';
import type { ProgressLedger } from './progress.js';

export interface SimContainer {
  name: string;
  /** Memory the checkpoint has to dump; drives the simulated latency. */
  memoryBytes?: number;
  /** Size of the dumped memory in the archive (checkpoint/pages-1.img); default 16 KiB. */
  pagesBytes?: number;
  /** NVIDIA GPUs it holds (nvidia.com/gpu): their memory is copied to host first, see SimGpus. */
  gpus?: number;
  /**
   * Whether the runtime lists it as running. The kubelet checkpoints only running containers.
   * Default: true, except init containers (done by the time the pod runs; set true for sidecars).
   */
  running?: boolean;
}

export interface SimPod {
  namespace: string;
  name: string;
  uid?: string;
  containers: SimContainer[];
  initContainers?: SimContainer[];
  ephemeralContainers?: SimContainer[];
}

/** Answers for pods this kubelet runs but the simulator was not told about (e.g. from an API server). */
export type PodLookup = (namespace: string, name: string) => SimPod | undefined | Promise<SimPod | undefined>;

export interface TokenIdentity {
  user: string;
  /** The authorizer's answer for create nodes/checkpoint. */
  allowed: boolean;
}

export type Failure =
  /** 500 "checkpointing of ns/pod/ctr failed (<message>)"; default message: a CRIU dump failure. */
  | { kind: 'runtime-error'; message?: string }
  /** The runtime takes this much longer (still subject to the CRI deadline). */
  | { kind: 'slow'; extraMs: number }
  /** The node stops answering: no response until the client goes away or the simulator stops. */
  | { kind: 'hang' }
  /** The connection is dropped without a response. */
  | { kind: 'reset' }
  /** The checkpoint is taken but the 200 body is not the JSON the kubelet sends. */
  | { kind: 'garbage'; body?: string }
  | { kind: 'unauthorized' }
  | { kind: 'forbidden'; user?: string }
  /** 404 "pod does not exist", as when the pod left the node just before the call. */
  | { kind: 'pod-not-found' };

export interface Injection {
  /** Which calls it applies to; an absent field matches anything. */
  namespace?: string;
  pod?: string;
  container?: string;
  failure: Failure;
  /** Chance (0..1) that a matching call fails, drawn from the seeded generator; default 1. */
  probability?: number;
  /** How many calls it may fail before it expires; default unlimited. */
  times?: number;
  /** Wait before runtime-error, reset, unauthorized, forbidden or pod-not-found shows; default 0. */
  delayMs?: number;
}

export interface LatencyOptions {
  baseMs?: number;
  msPerGiB?: number;
  /** Multiplies the whole latency; 0 makes every checkpoint instant. Default 1. */
  scale?: number;
}

/**
 * The node's NVIDIA GPUs. A container holding GPUs is checkpointed only where CRIU has its CUDA
 * plugin (`checkpoint`); elsewhere CRIU fails on the device, as it does for any device. Where it
 * can, the driver first copies the GPUs' memory to host: the time of src/scheduling/cost.ts's
 * model for the product, so that the extender's estimate and the simulated node agree.
 */
export interface SimGpus {
  product: string;
  /** Memory of one GPU, bytes. */
  memoryBytes: number;
  /** CRIU with its CUDA plugin (the node's hiatus.dev/gpu-checkpoint label). */
  checkpoint: boolean;
  /** GPU memory copied to host per second; default: the cost model's rate for the product. */
  bytesPerSecond?: number;
}

export interface KubeletSimulatorOptions {
  pods?: SimPod[];
  podLookup?: PodLookup;
  /** The kubelet's checkpoints directory; default: a temporary one, removed by stop(). */
  archiveDir?: string;
  latency?: LatencyOptions;
  gpus?: SimGpus;
  /** The kubelet's --runtime-request-timeout: the CRI default the timeout parameter can only raise. */
  runtimeRequestTimeoutMs?: number;
  /** ContainerCheckpoint feature gate (on by default since 1.30); off, the route does not exist. */
  featureGate?: boolean;
  /** Bearer tokens the kubelet accepts; absent, everyone is allowed (anonymous auth + AlwaysAllow). */
  tokens?: Record<string, TokenIdentity>;
  /** With tokens: authenticate requests without one as system:anonymous (then forbidden) instead of 401. */
  anonymousAuth?: boolean;
  /** Forbidden body: 'current' (1.32+, lists subresources) or 'pre-1.32'. */
  forbiddenMessage?: 'current' | 'pre-1.32';
  /** Whose message a concurrent checkpoint of the same container gets. Default 'cri-o'. */
  runtime?: 'cri-o' | 'containerd';
  injections?: Injection[];
  /** Seed for probabilistic injections. */
  seed?: number;
  /** PEM certificate and key; default: a self-signed one generated with openssl at start. */
  tls?: { cert: string; key: string };
  /** Wall clock for archive names and call timestamps. */
  now?: () => Date;
  log?: Logger;
  /**
   * Work counters of the containers this node runs (progress.ts): a checkpoint pauses the
   * container's counter while it runs and writes the value into the archive. Keyed by pod UID.
   */
  progress?: ProgressLedger;
}

export type CallOutcome = 'answered' | 'reset' | 'client-closed' | 'stopped';

export interface CheckpointCall {
  id: number;
  method: string;
  /** Request path as sent (still percent-encoded), without the query. */
  path: string;
  query: string;
  namespace?: string;
  pod?: string;
  container?: string;
  user?: string;
  /** null while in flight and when no response was sent. */
  status: number | null;
  body?: string;
  outcome?: CallOutcome;
  startedAt: number;
  finishedAt?: number;
  /** Set once the archive is on disk. */
  archivePath?: string;
}
