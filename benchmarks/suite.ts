// What a group of benchmarks (a suite) gets from run.ts: the extender under test, the settings,
// and where to put figures, progress and every measurement taken.
import type { Measurement } from './measure.js';
import type { ServerProcess } from './servers.js';
import type { Settings } from './settings.js';

export interface Recorded {
  /** e.g. "filter · fast path · NodeNames @5000 nodes × 16 clients". */
  label: string;
  m: Measurement;
}

export interface SuiteContext {
  extender: ServerProcess;
  settings: Settings;
  /** Figures, on stdout. */
  print(text: string): void;
  /** Progress while measuring, on stderr. */
  progress(text: string): void;
  /** Every measurement goes here: run.ts reports errors and memory over all of them. */
  record(entry: Recorded): void;
  /** Whether --only selects this scenario key. */
  wanted(key: string): boolean;
}

export interface Suite {
  name: string;
  /** Scenario keys, for --only. */
  keys: string[];
  run(ctx: SuiteContext): Promise<void>;
}
