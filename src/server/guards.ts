// Last-resort handlers for errors nothing awaited or caught. Every request path catches its own
// errors; these keep a bug elsewhere (a timer, an event handler, a promise dropped on the
// floor) from taking the process down silently, or at all: the extender keeps no state that a
// failed step could leave half-written (the API server holds the records, which are written
// with resourceVersion preconditions), and while no replica answers, scheduling stalls.
import type { Logger } from '../log.js';

export function installProcessGuards(log: Logger, proc: NodeJS.Process = process): void {
  proc.on('unhandledRejection', (reason) => {
    log.error('unhandled promise rejection', {
      error: (reason as Error | undefined)?.message ?? String(reason),
      stack: (reason as Error | undefined)?.stack,
    });
  });
  // Anything can be thrown, whatever the listener's type says.
  proc.on('uncaughtException', (e: unknown, origin) => {
    log.error('uncaught exception', {
      origin,
      error: (e as Error | undefined)?.message ?? String(e),
      stack: (e as Error | undefined)?.stack,
    });
  });
}
