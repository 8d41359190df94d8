// Every relative link between the Markdown pages (README.md, CONTRIBUTING.md, docs/, the
// READMEs of benchmarks/, deploy/ and e2e/) resolves: the file exists and, for a `#anchor` into a
// Markdown page, a heading of that page has that GitHub anchor. README.md stays under 15 KB.
import { describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const README_LIMIT_BYTES = 15 * 1024;

/** GitHub's heading anchor (github-slugger): lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  const text = heading
    .replace(/`([^`]*)`/g, '$1')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** Lines outside fenced code blocks, each with its 1-based line number. */
function proseLines(markdown: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let fence: string | undefined;
  markdown.split('\n').forEach((text, i) => {
    const marker = /^\s*(```|~~~)/.exec(text)?.[1];
    if (marker !== undefined && (fence === undefined || fence === marker)) {
      fence = fence === undefined ? marker : undefined;
      return;
    }
    if (fence === undefined) out.push({ line: i + 1, text });
  });
  return out;
}

/** The anchors of a Markdown page's headings, duplicates numbered as GitHub does (`x`, `x-1`). */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text } of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${String(n)}`);
  }
  return out;
}

/** Relative link targets of a page (inline links and images; code spans and blocks left out). */
function links(markdown: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const prose = text.replace(/`[^`]*`/g, '``');
    for (const m of prose.matchAll(/!?\[(?:[^\][]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue;
      out.push({ line, target });
    }
  }
  return out;
}

/** Every link of `file` (a path under `root`) that names a missing file or heading, as `file:line: target (why)`. */
function brokenLinks(root: string, file: string): string[] {
  const page = readFileSync(join(root, file), 'utf8');
  const broken: string[] = [];
  for (const { line, target } of links(page)) {
    const hash = target.indexOf('#');
    const path = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
    const resolved =
      path === '' ? join(root, file) : path.startsWith('/') ? join(root, path) : resolve(root, dirname(file), path);
    const where = `${file}:${String(line)}: ${target}`;
    if (relative(root, resolved).startsWith('..')) broken.push(`${where} (outside the repository)`);
    else if (!existsSync(resolved)) broken.push(`${where} (no such file)`);
    else if (anchor !== undefined && resolved.endsWith('.md') && !anchors(readFileSync(resolved, 'utf8')).has(anchor)) {
      broken.push(`${where} (no heading with that anchor)`);
    }
  }
  return broken;
}

function markdownUnder(dir: string, keep: (name: string) => boolean): string[] {
  if (!existsSync(join(ROOT, dir))) return [];
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) return [];
    if (statSync(join(ROOT, path)).isDirectory()) return markdownUnder(path, keep);
    return name.endsWith('.md') && keep(name) ? [path] : [];
  });
}

const PAGES = [
  'README.md',
  'CONTRIBUTING.md',
  ...markdownUnder('docs', () => true),
  ...markdownUnder('deploy', () => true),
  ...markdownUnder('benchmarks', (name) => name === 'README.md'),
  ...markdownUnder('e2e', (name) => name === 'README.md'),
];

describe('documentation links', () => {
  it('checks the user guide, the contributor guide and the docs/ pages', () => {
    expect(PAGES).toEqual(
      expect.arrayContaining([
        'README.md',
        'CONTRIBUTING.md',
        'docs/preemption.md',
        'deploy/README.md',
        'benchmarks/README.md',
      ]),
    );
  });

  it.each(PAGES)('%s: every relative link names an existing file and heading', (page) => {
    expect(brokenLinks(ROOT, page)).toEqual([]);
  });

  it('keeps README.md under 15 KB', () => {
    expect(statSync(join(ROOT, 'README.md')).size).toBeLessThan(README_LIMIT_BYTES);
  });
});

describe('the link checker', () => {
  it("makes GitHub's anchors from headings", () => {
    expect(slug('Deadline: slow checkpoints, and how long preempt holds the scheduler')).toBe(
      'deadline-slow-checkpoints-and-how-long-preempt-holds-the-scheduler',
    );
    expect(slug('`ignorable`')).toBe('ignorable');
    expect(slug('Operating it: `kubectl hiatus` and monitoring')).toBe('operating-it-kubectl-hiatus-and-monitoring');
    expect(slug('RBAC: what the extender may do, and why')).toBe('rbac-what-the-extender-may-do-and-why');
    expect([...anchors('# A\n## Metrics\n```\n# not a heading\n```\n## Metrics\n')]).toEqual([
      'a',
      'metrics',
      'metrics-1',
    ]);
  });

  it('reports a missing file, a missing heading and a link out of the repository, and nothing else', () => {
    const root = mkdtempSync(join(tmpdir(), 'hiatus-links-'));
    try {
      writeFileSync(join(root, 'other.md'), '# Other page\n\n## Failure modes\n');
      writeFileSync(
        join(root, 'page.md'),
        [
          '# Page',
          '[ok](other.md#failure-modes), [self](#page), [web](https://example.com/x.md#nope), `[code](missing.md)`',
          '[gone](missing.md)',
          '[bad anchor](other.md#failure-mode)',
          '```',
          '[in a block](missing-too.md)',
          '```',
          '[up](../outside.md)',
          '',
        ].join('\n'),
      );
      expect(brokenLinks(root, 'page.md')).toEqual([
        'page.md:3: missing.md (no such file)',
        'page.md:4: other.md#failure-mode (no heading with that anchor)',
        'page.md:8: ../outside.md (outside the repository)',
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
