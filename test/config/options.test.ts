import { describe, expect, it } from '@jest/globals';
import { OPTIONS, usage, type Option } from '../../src/config/options.js';

const options: Option<unknown>[] = Object.values(OPTIONS);

describe('the option table', () => {
  it('names each flag and environment variable once, the variable after its flag', () => {
    expect(new Set(options.map((o) => o.flag)).size).toBe(options.length);
    for (const o of options) expect(o.env).toBe(`HIATUS_${o.flag.toUpperCase().replace(/-/g, '_')}`);
  });

  it('has defaults its own parsers accept', () => {
    for (const o of options) {
      const parsed = o.parser.parse(o.default ?? '', o.flag);
      expect({ flag: o.flag, ok: parsed.ok }).toEqual({ flag: o.flag, ok: true });
    }
  });

  it('writes --help from the table: every flag, VALUE for options that take one, default and variable', () => {
    const help = usage();
    expect(help.startsWith('usage: hiatus [options]\n')).toBe(true);
    for (const o of options) expect(help).toContain(`  --${o.flag}${o.parser.kind === 'value' ? ' VALUE' : ''}\n`);
    expect(help).toContain('  --port VALUE\n      port to serve the extender API on (default 8888); env HIATUS_PORT');
    expect(help).toContain(
      '  --strict\n      reject nodes whose architecture, CPU features or runtime are unknown; env HIATUS_STRICT',
    );
  });
});
