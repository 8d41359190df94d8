// kubectl hiatus's command line, parsed the way kubectl parses its own: flags anywhere, `--flag
// value` or `--flag=value`, short flags with their value attached (`-nml`, `-ojson`). Pure.
import { parseDuration } from '../config/config.js';

export const COMMANDS = ['list', 'describe', 'checkpoint', 'restore', 'why'] as const;
export type Command = (typeof COMMANDS)[number];
export const OUTPUTS = ['json', 'yaml', 'wide'] as const;
export type Output = (typeof OUTPUTS)[number];

export interface Invocation {
  command: Command;
  /** The checkpoint or pod named on the command line. */
  target?: string;
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  allNamespaces: boolean;
  output?: Output;
  container?: string;
  name?: string;
  /** How long checkpoint and restore wait for the outcome, ms. */
  timeoutMs?: number;
}

export type Parsed = { kind: 'run'; invocation: Invocation } | { kind: 'help'; command?: Command };

/** A command line kubectl hiatus cannot run: printed as one line, exit code 1. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

interface FlagSpec {
  key: 'kubeconfig' | 'context' | 'namespace' | 'output' | 'container' | 'name' | 'timeout';
  long: string;
  short?: string;
  /** The commands that take it; undefined: every command. */
  only?: readonly Command[];
}

const VALUE_FLAGS: readonly FlagSpec[] = [
  { key: 'kubeconfig', long: 'kubeconfig' },
  { key: 'context', long: 'context' },
  { key: 'namespace', long: 'namespace', short: 'n' },
  { key: 'output', long: 'output', short: 'o' },
  { key: 'container', long: 'container', short: 'c', only: ['checkpoint'] },
  { key: 'name', long: 'name', only: ['restore'] },
  { key: 'timeout', long: 'timeout', only: ['checkpoint', 'restore'] },
];

const ARGUMENT: Record<Command, string | undefined> = {
  list: undefined,
  describe: 'CHECKPOINT',
  checkpoint: 'POD',
  restore: 'CHECKPOINT',
  why: 'POD',
};

export function usage(command?: Command): string {
  const lines: Record<Command, [string, string]> = {
    list: ['list [-n NS | -A] [-o wide|json|yaml]', 'checkpoints: phase, pod, node, size, publication, restore, age'],
    describe: [
      'describe CHECKPOINT [-o json|yaml]',
      'the record and its timeline: taken, evicted, published, claimed, restored',
    ],
    checkpoint: ['checkpoint POD [-c CONTAINER] [--timeout 5m]', 'checkpoint a running pod now (reason Manual)'],
    restore: [
      'restore CHECKPOINT [--name POD] [--timeout 1m]',
      'a pod that restores it: the owner scaled up, or a standalone pod',
    ],
    why: ['why POD [-o json|yaml]', 'why a pod is not restored, or started fresh'],
  };
  const flags: [string, string][] = [
    ['--kubeconfig PATH', 'kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)'],
    ['--context NAME', 'kubeconfig context (default: its current-context)'],
    ['-n, --namespace NS', 'namespace (default: the context\'s, else "default")'],
    ['-A, --all-namespaces', 'list: every namespace'],
    ['-o, --output FORMAT', 'json, yaml; wide (list)'],
    ['-h, --help', 'this help'],
  ];
  const shown = (command ? [command] : COMMANDS).map((c) => lines[c]);
  const width = Math.max(...[...shown, ...flags].map(([k]) => k.length)) + 3;
  const rows = (pairs: [string, string][]) => pairs.map(([k, v]) => `  ${k.padEnd(width)}${v}`);
  return ['Usage: kubectl hiatus COMMAND [flags]', '', 'Commands:', ...rows(shown), '', 'Flags:', ...rows(flags)].join(
    '\n',
  );
}

function isCommand(s: string): s is Command {
  return (COMMANDS as readonly string[]).includes(s);
}

export function parseArgs(argv: readonly string[]): Parsed {
  const values: Partial<Record<FlagSpec['key'], string>> = {};
  const positional: string[] = [];
  let allNamespaces = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (arg === '-A' || arg === '--all-namespaces' || arg === '--all-namespaces=true') {
      allNamespaces = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const { spec, inline } = matchFlag(arg);
    let value = inline;
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`flag needs an argument: ${arg}`);
    }
    values[spec.key] = value;
  }
  const [word, ...rest] = positional;
  if (word !== undefined && !isCommand(word))
    throw new UsageError(`unknown command "${word}" (commands: ${COMMANDS.join(', ')})`);
  if (help || word === undefined) return { kind: 'help', ...(word ? { command: word } : {}) };
  const command = word;
  for (const spec of VALUE_FLAGS) {
    if (values[spec.key] !== undefined && spec.only && !spec.only.includes(command)) {
      throw new UsageError(`--${spec.long} does not apply to ${command}`);
    }
  }
  if (allNamespaces && command !== 'list') throw new UsageError(`--all-namespaces does not apply to ${command}`);
  const wanted = ARGUMENT[command];
  if (!wanted && rest.length > 0) throw new UsageError(`${command} takes no argument, got "${rest[0]}"`);
  if (wanted && rest.length !== 1) {
    throw new UsageError(
      rest.length === 0
        ? `${command} needs a ${wanted}`
        : `${command} takes one ${wanted}, got ${rest.length}: ${rest.join(' ')}`,
    );
  }
  const invocation: Invocation = { command, allNamespaces };
  if (rest[0] !== undefined) invocation.target = rest[0];
  if (values.kubeconfig !== undefined) invocation.kubeconfig = nonEmpty('--kubeconfig', values.kubeconfig);
  if (values.context !== undefined) invocation.context = nonEmpty('--context', values.context);
  if (values.namespace !== undefined) invocation.namespace = nonEmpty('--namespace', values.namespace);
  if (values.container !== undefined) invocation.container = nonEmpty('--container', values.container);
  if (values.name !== undefined) invocation.name = nonEmpty('--name', values.name);
  if (values.output !== undefined) invocation.output = parseOutput(command, values.output);
  if (values.timeout !== undefined) {
    const ms = parseDuration(values.timeout);
    if (ms === undefined || ms <= 0)
      throw new UsageError(`--timeout "${values.timeout}" is not a duration such as 30s or 5m`);
    invocation.timeoutMs = ms;
  }
  return { kind: 'run', invocation };
}

function matchFlag(arg: string): { spec: FlagSpec; inline?: string } {
  if (arg.startsWith('--')) {
    const eq = arg.indexOf('=');
    const long = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = VALUE_FLAGS.find((f) => f.long === long);
    if (!spec) throw new UsageError(`unknown flag: --${long}`);
    return eq < 0 ? { spec } : { spec, inline: arg.slice(eq + 1) };
  }
  const spec = VALUE_FLAGS.find((f) => f.short === arg[1]);
  if (!spec) throw new UsageError(`unknown shorthand flag: '${arg[1]}' in ${arg}`);
  const attached = arg.slice(2).replace(/^=/, '');
  return attached ? { spec, inline: attached } : { spec };
}

function nonEmpty(flag: string, v: string): string {
  if (v.trim() === '') throw new UsageError(`${flag} must not be empty`);
  return v;
}

function parseOutput(command: Command, v: string): Output {
  const o = OUTPUTS.find((x) => x === v);
  if (!o) throw new UsageError(`--output "${v}" is not one of ${OUTPUTS.join(', ')}`);
  if (o === 'wide' && command !== 'list') throw new UsageError(`--output wide applies to list only`);
  return o;
}
