/**
 * The bench programs' command lines, on the CLI's parser (src/cli/args.ts): options only (a
 * positional is an error), and a usage error prints one line, `<program>: <message>`, and exits 2.
 */
import { UsageError, parseArgs, parsePositiveInt, type FlagSpec } from '../src/cli/args.ts';

export interface BenchOptions {
  /** A switch was given. */
  flag(name: string): boolean;
  /** An option's value, or undefined. */
  opt(name: string): string | undefined;
  /** A positive integer option, or `fallback` when absent. */
  int(name: string, fallback: number): number;
  /** A comma-separated list of positive integers, or `fallback` when absent. */
  ints(name: string, fallback: string): number[];
}

export function benchOptions(program: string, spec: Record<string, FlagSpec>): BenchOptions {
  // A usage error prints one line and exits 2, here or when a value is read.
  const checked = <T>(read: () => T): T => {
    try {
      return read();
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      process.stderr.write(`${program}: ${e.message}\n`);
      process.exit(2);
    }
  };
  const flags = checked(() => {
    const parsed = parseArgs(process.argv.slice(2), spec, program, 'bench/README.md');
    if (parsed.positionals.length) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    return parsed.flags;
  });
  const opt = (name: string) => flags.get(name)?.[0];
  return {
    flag: (name) => flags.has(name),
    opt,
    int: (name, fallback) => checked(() => (opt(name) === undefined ? fallback : parsePositiveInt(opt(name)!, `--${name}`))),
    ints: (name, fallback) => checked(() => (opt(name) ?? fallback).split(',').map((s) => parsePositiveInt(s, `--${name}`))),
  };
}
