/**
 * The CLI's argument parser (src/cli/args.ts, on node:util's parseArgs): what it accepts, and
 * the usage errors it words for the CLI (exit 2) and the bench programs.
 */
import { describe, expect, test } from 'vitest';
import { UsageError, parseArgs, type FlagSpec } from '../../src/cli/args.ts';

const SPEC: Record<string, FlagSpec> = {
  ids: { repeated: true, required: true },
  out: {},
  json: { boolean: true },
  help: { boolean: true },
};
const parse = (argv: string[]) => parseArgs(argv, SPEC, 'cache');
const entries = (argv: string[]) => {
  const r = parse(argv);
  return { positionals: r.positionals, flags: Object.fromEntries(r.flags) };
};
const usage = (argv: string[], message: string | RegExp) => {
  expect(() => parse(argv)).toThrow(UsageError);
  expect(() => parse(argv)).toThrow(message);
};

describe('parseArgs', () => {
  test('flags with separate and inline values, repeated flags in order, booleans, positionals', () => {
    expect(entries(['model', '--ids', '0,1', '--ids=2,3', '--json', '--out', 'a.safetensors'])).toEqual({
      positionals: ['model'],
      flags: { ids: ['0,1', '2,3'], json: [''], out: ['a.safetensors'] },
    });
  });

  test('`--` ends the flags; `-` is a positional; a value may start with one dash', () => {
    expect(entries(['-', '--ids', '-1', '--', '--json'])).toEqual({ positionals: ['-', '--json'], flags: { ids: ['-1'] } });
    expect(entries(['m', '--ids', '1', '--out='])).toEqual({ positionals: ['m'], flags: { ids: ['1'], out: [''] } });
  });

  test('unknown options, long and short, name themselves and the help to read', () => {
    usage(['m', '--ids', '1', '--frobnicate'], 'unknown option --frobnicate (see patchbay cache --help)');
    usage(['m', '--ids', '1', '-x'], 'unknown option -x (see patchbay cache --help)');
    usage(['m', '--ids', '1', '--constructor'], 'unknown option --constructor');
    expect(() => parseArgs(['--x'], SPEC, 'bench', 'bench/README.md')).toThrow('unknown option --x (see bench/README.md)');
  });

  test('a missing value, a value on a switch, a flag given twice, a required flag absent', () => {
    usage(['m', '--ids', '1', '--out'], '--out needs a value');
    usage(['m', '--out', '--ids', '1'], '--out needs a value');
    usage(['m', '--ids', '1', '--json=yes'], '--json takes no value');
    usage(['m', '--ids', '1', '--out', 'a', '--out', 'b'], '--out given more than once');
    usage(['m', '--out', 'a'], 'missing --ids (see patchbay cache --help)');
  });

  test('--help skips the required flags', () => {
    expect(entries(['--help'])).toEqual({ positionals: [], flags: { help: [''] } });
  });
});
