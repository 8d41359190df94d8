// One kubectl hiatus command line, from argv to exit code: parse, find the cluster, run, and turn
// every expected failure into one `error: ...` line with exit code 1.
import { parseArgs, usage, UsageError } from './args.js';
import { Cluster } from './cluster.js';
import { runCommand, type Io } from './commands.js';
import { CliError } from './errors.js';
import { connect } from './kubeconfig.js';

export async function run(argv: readonly string[], env: NodeJS.ProcessEnv, io: Io, home?: string): Promise<number> {
  try {
    const parsed = parseArgs(argv);
    if (parsed.kind === 'help') {
      io.out(usage(parsed.command));
      return 0;
    }
    const inv = parsed.invocation;
    await runCommand(inv, new Cluster(connect(inv, env, home)), io);
    return 0;
  } catch (e) {
    io.err(failureLine(e, env.HIATUS_DEBUG === '1'));
    return 1;
  }
}

/**
 * The one line a failure prints. An unexpected error is a bug in the plugin: its message, and its
 * stack only when asked for (HIATUS_DEBUG=1), so that a script reading stderr still gets one line.
 */
export function failureLine(e: unknown, debug: boolean): string {
  if (e instanceof CliError || e instanceof UsageError) return `error: ${e.message}`;
  const err = e instanceof Error ? e : undefined;
  if (debug && err?.stack) return `error: ${err.stack}`;
  return `error: internal error: ${err?.message ?? String(e)} (HIATUS_DEBUG=1 prints where)`;
}
