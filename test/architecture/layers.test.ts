// The layer rule of CONTRIBUTING.md: a module under src/ imports only from its own folder's layer
// or a layer below it, and never from testing/, test/ or benchmarks/. Checked over the sources as
// they are, so a new upward import fails here rather than in review.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const src = path.join(root, 'src');

/** Bottom to top; a folder's index is its layer. The top layer's folders do not import each other. */
export const LAYERS: readonly (readonly string[])[] = [
  ['log.ts', 'api'],
  ['metrics'],
  ['cluster'],
  ['scheduling'],
  ['checkpoint'],
  ['restore'],
  ['preemption'],
  ['server'],
  ['config'],
  ['extender.ts'],
  ['agent', 'cli', 'main.ts'],
];

function layerOf(rel: string): { layer: number; unit: string } | undefined {
  const unit = rel.split('/')[0]!;
  const layer = LAYERS.findIndex((l) => l.includes(unit));
  return layer < 0 ? undefined : { layer, unit };
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

export function violations(): string[] {
  const found: string[] = [];
  for (const file of sources(src)) {
    const from = layerOf(path.relative(src, file));
    const where = path.relative(root, file);
    if (!from) {
      found.push(`${where}: its folder has no layer in LAYERS`);
      continue;
    }
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const spec = m[1] ?? m[2]!;
      if (!spec.startsWith('.')) continue;
      const target = path.relative(src, path.resolve(path.dirname(file), spec));
      if (target.startsWith('..')) {
        found.push(`${where} imports ${spec}: outside src/`);
        continue;
      }
      const to = layerOf(target);
      if (!to) continue;
      if (to.layer > from.layer)
        found.push(
          `${where} imports ${spec}: ${to.unit} (layer ${to.layer}) is above ${from.unit} (layer ${from.layer})`,
        );
      else if (to.layer === from.layer && to.unit !== from.unit && from.layer === LAYERS.length - 1) {
        found.push(`${where} imports ${spec}: ${to.unit} and ${from.unit} are separate programs`);
      }
    }
  }
  return found;
}

describe('layers', () => {
  it('every module imports only from its own layer or below', () => {
    expect(violations()).toEqual([]);
  });

  it('places every folder of src/ in a layer', () => {
    const units = readdirSync(src).filter((n) => !n.startsWith('.'));
    expect(units.filter((u) => !LAYERS.some((l) => l.includes(u)))).toEqual([]);
  });
});
