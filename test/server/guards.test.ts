import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { createLogger } from '../../src/log.js';
import { installProcessGuards } from '../../src/server/guards.js';

/** A stand-in process with the guards installed, and the lines they log. */
function guarded(): { lines: string[]; proc: EventEmitter } {
  const lines: string[] = [];
  const proc = new EventEmitter();
  installProcessGuards(
    createLogger('info', (l) => lines.push(l)),
    proc as unknown as NodeJS.Process,
  );
  return { lines, proc };
}

describe('process guards', () => {
  it('log an unhandled rejection and an uncaught exception with their stacks, and keep the process', () => {
    const { lines, proc } = guarded();
    proc.emit('unhandledRejection', new Error('lost promise'), Promise.resolve());
    proc.emit('uncaughtException', new TypeError('bad timer'), 'uncaughtException');
    const logged = lines.map((l) => JSON.parse(l) as Record<string, string>);
    expect(logged).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: 'unhandled promise rejection',
        error: 'lost promise',
        stack: expect.stringContaining('lost promise'),
      }),
      expect.objectContaining({
        level: 'error',
        msg: 'uncaught exception',
        origin: 'uncaughtException',
        error: 'bad timer',
        stack: expect.stringContaining('TypeError'),
      }),
    ]);
  });

  it('log a rejection with a value that is not an Error', () => {
    const { lines, proc } = guarded();
    proc.emit('unhandledRejection', 'just a string', Promise.resolve());
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'unhandled promise rejection', error: 'just a string' });
  });
});
