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
    if (e instanceof CliError || e instanceof UsageError) {
      io.err(`error: ${e.message}`);
      return 1;
    }
    io.err(`error: ${(e as Error | undefined)?.stack ?? String(e)}`);
    return 1;
  }
}
