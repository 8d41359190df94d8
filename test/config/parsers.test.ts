import { describe, expect, it } from '@jest/globals';
import * as parsers from '../../src/config/parsers.js';

const parse = <T>(parser: parsers.Parser<T>, raw: string): parsers.Parsed<T> => parser.parse(raw, 'opt');
const accepts = <T>(parser: parsers.Parser<T>, raw: string, value: T) =>
  expect(parse(parser, raw)).toEqual({ ok: true, value });
const rejects = <T>(parser: parsers.Parser<T>, raw: string, problem: string) =>
  expect(parse(parser, raw)).toEqual({ ok: false, problems: [problem] });

describe('option parsers', () => {
  it('bool: a switch reads the usual words for on and off, empty as off', () => {
    expect(parsers.bool.kind).toBe('switch');
    for (const on of ['1', 'true', 'YES', 'On']) accepts(parsers.bool, on, true);
    for (const off of ['0', 'false', 'No', 'off', '']) accepts(parsers.bool, off, false);
    rejects(parsers.bool, 'maybe', '--opt: "maybe" is not a boolean');
  });

  it('int: a whole number inside its range, ends included', () => {
    const port = parsers.int(1, 65535);
    expect(port.kind).toBe('value');
    accepts(port, '1', 1);
    accepts(port, '65535', 65535);
    accepts(port, ' 80 ', 80);
    for (const bad of ['0', '65536', '-1', '1.5', '8e3', 'http', ''])
      rejects(port, bad, `--opt: "${bad}" must be an integer from 1 to 65535`);
  });

  it('oneOf: exactly one of its words, case included', () => {
    const access = parsers.oneOf(['direct', 'proxy'] as const);
    accepts(access, 'proxy', 'proxy');
    rejects(access, 'Proxy', '--opt: "Proxy" must be one of direct, proxy');
    rejects(access, '', '--opt: "" must be one of direct, proxy');
  });

  it('parseDuration: one number and one unit, in milliseconds', () => {
    expect(parsers.parseDuration('500ms')).toBe(500);
    expect(parsers.parseDuration('1.5s')).toBe(1500);
    expect(parsers.parseDuration(' 10m ')).toBe(600_000);
    expect(parsers.parseDuration('2h')).toBe(7_200_000);
    for (const bad of ['5', '1m30s', '-1s', '5d', 's', '']) expect(parsers.parseDuration(bad)).toBeUndefined();
  });

  it('duration: above zero only', () => {
    accepts(parsers.duration, '5s', 5000);
    for (const bad of ['0s', '0', '5', 'soon'])
      rejects(parsers.duration, bad, `--opt: "${bad}" must be a positive duration such as 5s, 500ms or 10m`);
  });

  it('durationOrZero: zero, with or without a unit, means none', () => {
    const wait = parsers.durationOrZero('1s or 500ms');
    accepts(wait, '0', 0);
    accepts(wait, '0s', 0);
    accepts(wait, '250ms', 250);
    rejects(wait, 'never', '--opt: "never" must be 0 or a duration such as 1s or 500ms');
    rejects(wait, '00', '--opt: "00" must be 0 or a duration such as 1s or 500ms');
  });

  it('bytes: a whole byte quantity, at least the minimum when there is one', () => {
    const body = parsers.bytes('16Mi', 1024);
    accepts(body, '16Mi', 16 * 2 ** 20);
    accepts(body, '1Ki', 1024);
    rejects(body, '1023', '--opt: "1023" must be a byte size of at least 1024 (e.g. 16Mi)');
    rejects(body, '1.5', '--opt: "1.5" must be a byte size of at least 1024 (e.g. 16Mi)');
    const memory = parsers.bytes('192Mi');
    accepts(memory, '0', 0);
    accepts(memory, '1G', 1e9);
    rejects(memory, 'lots', '--opt: "lots" must be a byte size (e.g. 192Mi)');
  });

  it('text and path: text as given; an empty path is no path', () => {
    accepts(parsers.text, ' 0.0.0.0 ', ' 0.0.0.0 ');
    accepts(parsers.path, '/etc/hiatus/tls.crt', '/etc/hiatus/tls.crt');
    accepts(parsers.path, '', undefined);
  });

  it('map: turns a parsed value and passes problems through', () => {
    const seconds = parsers.map(parsers.duration, (ms) => Math.ceil(ms / 1000));
    accepts(seconds, '1500ms', 2);
    rejects(seconds, 'x', '--opt: "x" must be a positive duration such as 5s, 500ms or 10m');
    expect(parsers.map(parsers.bool, (b) => !b).kind).toBe('switch');
  });

  it('collecting: a parser that pushes its problems fails with all of them', () => {
    const words = parsers.collecting((raw, problems) => {
      const out = raw.split(',');
      for (const w of out) if (!/^[a-z]+$/.test(w)) problems.push(`--words: "${w}" is not a word`);
      return out;
    });
    accepts(words, 'a,b', ['a', 'b']);
    expect(parse(words, 'a,1,B')).toEqual({
      ok: false,
      problems: ['--words: "1" is not a word', '--words: "B" is not a word'],
    });
  });
});
