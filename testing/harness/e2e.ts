// What the end-to-end scenarios (test/e2e/) share: the names their objects carry and one rig per
// scenario file (make.ts builds the objects). Jest's hooks: only the scenarios import this module;
// the demo and the benchmarks use the rest of the harness outside jest.
import { afterAll, beforeAll } from '@jest/globals';
import type { Rig } from './cluster.js';
import { ControlPlane } from './controlPlane.js';
import type { AdmissionOptions } from './extenderTls.js';
import { startRigWithWebhook } from './webhook.js';

/** A scenario file's setup, which builds the control plane first when its cache is cold (CONTRIBUTING.md). */
export const BUILD_AND_START_MS = 45 * 60_000;
/** The profile of scheduler-config/ the scenarios schedule with. */
export const SCHEDULER = 'hiatus-scheduler';
/** The node label each scenario selects its own nodes by, a cluster's nodes being several scenarios'. */
export const GROUP = 'e2e.hiatus.dev/group';
export const inGroup = (group: string) => ({ [GROUP]: group });
/** Only pods with this label go through the restore webhook (added to the shipped objectSelector). */
export const WEBHOOK_LABEL = 'e2e.hiatus.dev/restore-webhook';

/**
 * The restore contract's keys as docs/restore-contract.md names them, written out rather than
 * imported from src/api/keys.ts so that a renamed key fails the scenarios.
 */
export const CONTRACT = {
  from: 'hiatus.dev/restore-from',
  constraints: 'hiatus.dev/restore-constraints',
  generation: 'hiatus.dev/restore-generation',
  /** The extended resource a restore pod requests (quantity 0). */
  marker: 'hiatus.dev/checkpoint-restore',
} as const;

/** A rig of SCHEDULER whose extender serves the restore webhook, with `extraArgs`, to pods labelled WEBHOOK_LABEL. */
export const webhookRig = (extraArgs: string[]) => startRigWithWebhook(SCHEDULER, WEBHOOK_LABEL, extraArgs);

/** Wraps a test body so that its failure marks the rig failed. */
export type Step = (fn: () => Promise<void>) => () => Promise<void>;

/** For a scenario file without a rig: a Step that records a failure, and whether one happened (to keep the logs). */
export function failureTracking(): { step: Step; failed: () => boolean } {
  let failed = false;
  const step: Step = (fn) => async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  };
  return { step, failed: () => failed };
}

/**
 * For a scenario file with a bare control plane of its own (no scheduler, extender or nodes): starts
 * it before the file's tests and hands it to `setUp`; stops it after them, keeping its directory
 * and printing its logs' tails when the setup or a step failed. `cp()` is the control plane.
 */
export function controlPlanePerFile(
  setUp: (cp: ControlPlane) => Promise<void>,
  admission: AdmissionOptions = {},
): {
  step: Step;
  cp: () => ControlPlane;
} {
  const { step, failed } = failureTracking();
  let cp: ControlPlane | undefined;
  beforeAll(async () => {
    const started = await ControlPlane.start(admission);
    try {
      await setUp(started);
    } catch (e) {
      process.stderr.write(`e2e setup failed; logs in ${started.dir}\n${started.tails()}\n`);
      await started.stop({ keep: true });
      throw e;
    }
    cp = started;
  }, BUILD_AND_START_MS);
  afterAll(async () => {
    if (cp && failed()) process.stderr.write(`logs kept in ${cp.dir}\n${cp.tails(20)}\n`);
    await cp?.stop({ keep: failed() });
  });
  return { step, cp: () => cp! };
}

/**
 * One rig for the scenario file: `start` starts it before the file's tests, then `setUp` gets it
 * (to keep it, and to create what the scenarios share); it stops after the tests, keeping and
 * printing its logs when a step failed.
 */
export function rigPerFile(start: () => Promise<Rig>, setUp: (rig: Rig) => Promise<void> | void): Step {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await start();
    await setUp(rig);
  }, BUILD_AND_START_MS);
  afterAll(async () => {
    await rig?.stopAll();
  });
  return (fn) => async () => rig!.step(fn)();
}
