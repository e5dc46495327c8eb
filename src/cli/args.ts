/**
 * Command-line parsing for `patchbay` and the bench programs: `node:util`'s `parseArgs` splits
 * the arguments (`--flag value`, `--flag=value`, `--` ending the flags, `-` as a positional), and
 * this file checks them against a spec and words the errors in Patchbay's terms (a missing
 * value, a flag given twice, a ragged `--ids` row, a bad regex). Every flag is declared
 * `multiple` so that a repeated one reaches the check here, which allows it only where the spec
 * says (`--ids`, one flag per batch row).
 */
import { parseArgs as splitArgs } from 'node:util';
import { PROCESSINGS, type Processing } from '../model/processing.ts';

/** Bad command-line input. The CLI prints its message and exits 2 (usage), not 1 (failure). */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface FlagSpec {
  /** May appear more than once; all values are kept in order. */
  repeated?: boolean;
  required?: boolean;
  /** A switch without a value (e.g. `--help`). */
  boolean?: boolean;
}

export interface ParsedArgs {
  positionals: string[];
  /** Values per flag name (without `--`); a boolean flag that was given holds `['']`. */
  flags: Map<string, string[]>;
}

/**
 * Splits `argv` into positionals and flags, checked against `spec`. Errors end with
 * `(see ${help})`, by default `patchbay <command> --help`.
 */
export function parseArgs(argv: readonly string[], spec: Record<string, FlagSpec>, command: string, help = `patchbay ${command} --help`): ParsedArgs {
  const options = Object.fromEntries(Object.entries(spec).map(([name, s]) => [name, { type: s.boolean ? ('boolean' as const) : ('string' as const), multiple: true }]));
  // strict: false, so that an unknown flag or a missing value comes back as a token to word here
  // rather than as Node's message.
  const { positionals, tokens } = splitArgs({ args: [...argv], options, allowPositionals: true, strict: false, tokens: true });
  const flags = new Map<string, string[]>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    // hasOwn: "--constructor" must not find Object.prototype's.
    const s = Object.hasOwn(spec, t.name) && t.rawName.startsWith('--') ? spec[t.name] : undefined;
    if (!s) throw new UsageError(`unknown option ${t.rawName} (see ${help})`);
    if (s.boolean && t.inlineValue) throw new UsageError(`--${t.name} takes no value`);
    // A following "--flag" is not a value: `--out --ids 1` is a missing --out value.
    if (!s.boolean && (t.value === undefined || (!t.inlineValue && t.value.startsWith('--')))) throw new UsageError(`--${t.name} needs a value`);
    const seen = flags.get(t.name);
    if (seen && !s.repeated) throw new UsageError(`--${t.name} given more than once`);
    flags.set(t.name, [...(seen ?? []), s.boolean ? '' : t.value!]);
  }
  if (!flags.has('help')) {
    for (const [name, s] of Object.entries(spec)) {
      if (s.required && !flags.has(name)) throw new UsageError(`missing --${name} (see ${help})`);
    }
  }
  return { positionals, flags };
}

/** One `--ids` value, "0,5,9", as token ids; `flag` names the option in messages (e.g. `--clean`). */
export function parseIdRow(text: string, flag = '--ids'): number[] {
  if (text.trim() === '') throw new UsageError(`${flag} is empty: give comma-separated token ids, e.g. ${flag} 0,5,9`);
  return text.split(',').map((part) => {
    const s = part.trim();
    // Digits only: Number() would also accept "1e3", "0x10" and "", which are typos here.
    const id = /^\d+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(id)) {
      throw new UsageError(`${flag} ${text}: "${s}" is not a token id (a non-negative integer)`);
    }
    return id;
  });
}

/** Every `--ids` flag, one batch row each; rows must have equal lengths. */
export function parseIdRows(values: readonly string[]): number[][] {
  const rows = values.map((v) => parseIdRow(v));
  const lengths = rows.map((r) => r.length);
  if (lengths.some((n) => n !== lengths[0])) {
    throw new UsageError(`--ids rows have different lengths: ${lengths.join(', ')}`);
  }
  return rows;
}

/** A `--names` pattern. JavaScript regex syntax, unanchored, matched against hook names. */
export function parseNamesRegex(source: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    // V8 says "Invalid regular expression: /(/: Unterminated group"; keep only the reason.
    const msg = (e as Error).message;
    const why = msg.startsWith('Invalid regular expression') ? msg.slice(msg.lastIndexOf(': ') + 2) : msg;
    throw new UsageError(`--names: invalid regular expression "${source}": ${why}`);
  }
}

/** A positive integer option, e.g. `--batch 4`; `flag` names it in messages. */
export function parsePositiveInt(text: string, flag: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} ${text}: expected a positive integer`);
  return n;
}

/** `--processing`, shared by every command that loads a model. */
export const PROCESSING_HELP = `  --processing P      how the weights are prepared: none (the default, the checkpoint as it is) or
                      transformer-lens (TransformerLens' from_pretrained: fold_ln,
                      center_writing_weights, center_unembed, fold_value_biases)`;

/** The \`--processing\` value, checked ('none' when absent). */
export function parseProcessingFlag(flags: Map<string, string[]>): Processing {
  const text = flags.get('processing')?.[0] ?? 'none';
  if (!(PROCESSINGS as readonly string[]).includes(text)) throw new UsageError(`--processing ${text}: unknown processing; expected ${PROCESSINGS.join(' or ')}`);
  return text as Processing;
}

/** `--dtype`, shared by every command that loads a model. */
export const DTYPE_HELP = `  --dtype D           weight precision on the GPU: auto (the default: float16 only where the
                      checkpoint's matrices are float16 and the adapter has shader-f16, so no
                      value changes), f32, or f16 (every matrix rounded to float16; a value
                      beyond its range is an error)`;

/** The \`--dtype\` value as loadModel's \`f16\` option ('auto' when absent). */
export function parseDtypeFlag(flags: Map<string, string[]>): boolean | 'auto' {
  const text = flags.get('dtype')?.[0] ?? 'auto';
  if (text === 'auto') return 'auto';
  if (text === 'f32' || text === 'f16') return text === 'f16';
  throw new UsageError(`--dtype ${text}: expected f32, f16 or auto`);
}
