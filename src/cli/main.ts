#!/usr/bin/env node
// kubectl-hiatus, the kubectl plugin: kubectl runs the `kubectl-hiatus` it finds on PATH for
// `kubectl hiatus ...` (package.json "bin"; docs/kubectl-plugin.md).
import { run } from './run.js';

process.exitCode = await run(process.argv.slice(2), process.env, {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  now: Date.now,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});
