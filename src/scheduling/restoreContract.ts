// The restore contract: a pod to be restored from a checkpoint carries the Checkpoint's name and
// a description of the node the checkpoint was taken on. filter and prioritize read only this.
import { ANNOTATION_RESTORE_CONSTRAINTS, ANNOTATION_RESTORE_FROM } from '../api/keys.js';
import { podRef, type Pod } from '../api/kubernetes.js';

export interface RestoreConstraints {
  node: string;
  arch: string;
  cpuFeatures: string[];
  runtime: string;
  zone?: string;
  /** A GPU checkpoint: the GPU product it was taken on (nvidia.com/gpu.product); restore needs the same. */
  gpuProduct?: string;
  /** A GPU checkpoint: the NVIDIA driver major version it was taken with; restore needs this or newer. */
  gpuDriverMajor?: number;
  /**
   * The checkpoint has no published image (yet): only its source node (`node`), which holds the
   * archive, can restore it. Written by the restore webhook; absent on hand-written contracts.
   */
  sourceOnly?: boolean;
}

export interface RestoreContract {
  checkpoint: string;
  constraints: RestoreConstraints;
}

/** The pod's restore annotations are present but unusable. */
export class ContractError extends Error {
  constructor(
    readonly pod: string,
    problem: string,
  ) {
    super(`pod ${pod}: ${problem}`);
    this.name = 'ContractError';
  }
}

/** True when the pod carries any part of the contract; the fast path is everything else. */
export function hasRestoreContract(pod: Pod): boolean {
  const a = pod.metadata?.annotations;
  return a != null && (a[ANNOTATION_RESTORE_FROM] !== undefined || a[ANNOTATION_RESTORE_CONSTRAINTS] !== undefined);
}

function requireString(pod: string, obj: Record<string, unknown>, key: string): string {
  const v = obj[key];
  if (typeof v !== 'string' || v.trim() === '') {
    throw new ContractError(pod, `${ANNOTATION_RESTORE_CONSTRAINTS}: "${key}" must be a non-empty string`);
  }
  return v.trim();
}

export function parseRestoreConstraints(pod: string, raw: string): RestoreConstraints {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw new ContractError(pod, `${ANNOTATION_RESTORE_CONSTRAINTS} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ContractError(pod, `${ANNOTATION_RESTORE_CONSTRAINTS} must be a JSON object`);
  }
  const obj = value as Record<string, unknown>;
  const features = obj.cpuFeatures ?? [];
  if (!Array.isArray(features) || features.some((f) => typeof f !== 'string' || f.trim() === '')) {
    throw new ContractError(
      pod,
      `${ANNOTATION_RESTORE_CONSTRAINTS}: "cpuFeatures" must be a list of non-empty strings`,
    );
  }
  const constraints: RestoreConstraints = {
    node: requireString(pod, obj, 'node'),
    arch: requireString(pod, obj, 'arch'),
    cpuFeatures: (features as string[]).map((f) => f.trim().toUpperCase()),
    runtime: requireString(pod, obj, 'runtime'),
  };
  if (obj.sourceOnly !== undefined && obj.sourceOnly !== null) {
    if (typeof obj.sourceOnly !== 'boolean') {
      throw new ContractError(pod, `${ANNOTATION_RESTORE_CONSTRAINTS}: "sourceOnly" must be a boolean`);
    }
    if (obj.sourceOnly) constraints.sourceOnly = true;
  }
  if (obj.gpuProduct !== undefined && obj.gpuProduct !== null)
    constraints.gpuProduct = requireString(pod, obj, 'gpuProduct');
  if (obj.gpuDriverMajor !== undefined && obj.gpuDriverMajor !== null) {
    const v = obj.gpuDriverMajor;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new ContractError(pod, `${ANNOTATION_RESTORE_CONSTRAINTS}: "gpuDriverMajor" must be a positive integer`);
    }
    constraints.gpuDriverMajor = v;
  }
  if (obj.zone !== undefined && obj.zone !== null) {
    if (typeof obj.zone !== 'string') {
      throw new ContractError(pod, `${ANNOTATION_RESTORE_CONSTRAINTS}: "zone" must be a string`);
    }
    if (obj.zone !== '') constraints.zone = obj.zone;
  }
  return constraints;
}

/** Reads the contract; null when the pod has none; ContractError when it is broken. */
export function readRestoreContract(pod: Pod): RestoreContract | null {
  if (!hasRestoreContract(pod)) return null;
  const ref = podRef(pod);
  const a = pod.metadata?.annotations ?? {};
  const from = a[ANNOTATION_RESTORE_FROM];
  const raw = a[ANNOTATION_RESTORE_CONSTRAINTS];
  if (typeof from !== 'string' || from.trim() === '') {
    throw new ContractError(ref, `${ANNOTATION_RESTORE_FROM} must name a Checkpoint`);
  }
  if (typeof raw !== 'string') {
    throw new ContractError(ref, `${ANNOTATION_RESTORE_FROM} is set but ${ANNOTATION_RESTORE_CONSTRAINTS} is missing`);
  }
  return { checkpoint: from.trim(), constraints: parseRestoreConstraints(ref, raw) };
}
