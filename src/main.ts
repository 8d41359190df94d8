// The extender's entry point (node dist/src/main.js; Dockerfile, deploy/deployment.yaml): reads the
// configuration, builds the extender (extender.ts) and runs it until SIGTERM or SIGINT.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, wantsHelp, type Config } from './config/config.js';
import { usage } from './config/options.js';
import { setupExtender } from './extender.js';
import { createLogger } from './log.js';
import { installProcessGuards } from './server/guards.js';

// The listener normally closes at once; connections kube-scheduler keeps open may hold it longer.
const SHUTDOWN_GRACE_MS = 5_000;

export function main(argv: string[]): void {
  if (wantsHelp(argv)) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  let config: Config;
  try {
    config = loadConfig(argv, process.env);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`hiatus: ${e.message}\n\n${usage()}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  installProcessGuards(log);
  const extender = setupExtender(config, { log, env: process.env });
  extender.run();
  const shutdown = (signal: string) => {
    log.info('shutting down', { signal });
    void extender.stop().then(() => process.exit(0));
    setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

/** Whether this module is the one node was started with, rather than imported. */
function isEntryPoint(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false; // argv[1] names no file (node -e, a REPL): not this one either
  }
}

if (isEntryPoint()) main(process.argv.slice(2));
