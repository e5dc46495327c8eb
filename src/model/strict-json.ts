/**
 * A strict JSON reader for safetensors headers, which must accept and refuse exactly what the
 * reference reader (the Rust `safetensors` crate, through serde_json) does. `JSON.parse` cannot:
 * it keeps only the last of duplicate keys without saying so, turns `16.0` and `16` into the
 * same number, and rounds integers past 2^53. So this keeps the document as a tree in which
 * every object is its list of entries in order (duplicates included) and every number is its
 * source text; the caller decides what each may be.
 *
 * Grammar: RFC 8259, as serde_json reads it: whitespace is space, tab, CR and LF only (a BOM
 * is an error); strings refuse raw control characters, unknown escapes and lone surrogates;
 * numbers have no leading zeros or `+`, and one that overflows a double is "out of range";
 * containers nest at most 127 deep (serde_json's recursion limit of 128).
 */

export type JsonNode =
  | { kind: 'object'; entries: Array<[string, JsonNode]>; at: number }
  | { kind: 'array'; items: JsonNode[]; at: number }
  | { kind: 'string'; value: string; at: number }
  | { kind: 'number'; text: string; at: number }
  | { kind: 'bool'; value: boolean; at: number }
  | { kind: 'null'; at: number };

export class StrictJsonError extends Error {
  override name = 'StrictJsonError';
}

/** Containers may nest this deep (serde_json refuses the 128th level). */
const MAX_DEPTH = 127;

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

export function parseStrictJson(text: string): JsonNode {
  let i = 0;
  const fail = (msg: string): never => {
    throw new StrictJsonError(`${msg} at character ${i}`);
  };
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail('expected a value');
  };
  const hex4 = (): number => {
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('invalid \\u escape');
    i += 4;
    return parseInt(h, 16);
  };
  const string = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) {
        out += text[i++];
        continue;
      }
      i++; // backslash
      const e = text[i++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const u = hex4();
          if (u >= 0xdc00 && u <= 0xdfff) fail('lone trailing surrogate in a \\u escape');
          if (u >= 0xd800 && u <= 0xdbff) {
            if (text[i] !== '\\' || text[i + 1] !== 'u') fail('lone leading surrogate in a \\u escape');
            i += 2;
            const lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail('lone leading surrogate in a \\u escape');
            out += String.fromCharCode(u, lo);
          } else out += String.fromCharCode(u);
          break;
        }
        default:
          fail('invalid escape');
      }
    }
  };
  const value = (depth: number): JsonNode => {
    ws();
    const at = i;
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= MAX_DEPTH) fail('nesting too deep');
      i++;
      ws();
      const close = c === '{' ? '}' : ']';
      const entries: Array<[string, JsonNode]> = [];
      const items: JsonNode[] = [];
      if (text[i] === close) {
        i++;
      } else {
        for (;;) {
          if (c === '{') {
            ws();
            if (text[i] !== '"') fail('expected a key');
            const key = string();
            ws();
            if (text[i] !== ':') fail('expected ":"');
            i++;
            entries.push([key, value(depth + 1)]);
          } else {
            items.push(value(depth + 1));
          }
          ws();
          if (text[i] === ',') {
            i++;
            ws();
            if (text[i] === close) fail('trailing comma');
            continue;
          }
          if (text[i] === close) {
            i++;
            break;
          }
          fail(`expected "," or "${close}"`);
        }
      }
      return c === '{' ? { kind: 'object', entries, at } : { kind: 'array', items, at };
    }
    if (c === '"') return { kind: 'string', value: string(), at };
    if (c === 't') return (literal('true'), { kind: 'bool', value: true, at });
    if (c === 'f') return (literal('false'), { kind: 'bool', value: false, at });
    if (c === 'n') return (literal('null'), { kind: 'null', at });
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m || m[0] === '-') return fail('expected a value');
    const numText = m[0];
    i += numText.length;
    if (/[0-9.eE+-]/.test(text[i] ?? '')) fail('invalid number');
    if (!Number.isFinite(Number(numText))) fail('number out of range');
    return { kind: 'number', text: numText, at };
  };
  const root = value(0);
  ws();
  if (i !== text.length) fail('trailing characters');
  return root;
}

/** What a node is, for messages: "an array", "the number 16.0". */
export function describeNode(n: JsonNode): string {
  switch (n.kind) {
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    case 'string':
      return `the string ${JSON.stringify(n.value)}`;
    case 'number':
      return `the number ${n.text}`;
    case 'bool':
      return String(n.value);
    case 'null':
      return 'null';
  }
}

/** 2^64 - 1: Rust's usize on the 64-bit hosts the reference library runs on. */
export const USIZE_MAX = (1n << 64n) - 1n;

/** A JSON integer that is a valid usize (no sign, fraction or exponent; at most 2^64 - 1), or null. */
export function asUsize(n: JsonNode): bigint | null {
  if (n.kind !== 'number' || !/^(0|[1-9][0-9]*)$/.test(n.text)) return null;
  const v = BigInt(n.text);
  return v <= USIZE_MAX ? v : null;
}
