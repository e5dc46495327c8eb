/**
 * Metrics as short strings, shared by the command line (`--metric`), experiment specs and the
 * URLs of figures:
 *
 *   logit-diff:POS:GOOD:BAD   logits[POS, GOOD] - logits[POS, BAD]
 *   logprob:POS:TOKEN         log p(TOKEN) at POS (log-softmax of the logits there)
 *   prob:POS:TOKEN            p(TOKEN) at POS
 *   loss:START:END            mean cross-entropy of predicting the prompt's own next token,
 *                             tokens[t + 1] at t, for START <= t < END (END <= n_pos - 1)
 *
 * Positions may be relative to the prompt, so a metric keeps its meaning when a reader edits it:
 *   POS     12 (absolute), -1 (the last position; -2 the one before), or "TEXT" (in double
 *           quotes, JSON escapes: the last position holding that token, e.g. " John")
 *   START, END  integers; negative ones count from the end (END -1 = n_pos - 1, the last
 *           position that has a next token)
 *   GOOD, BAD, TOKEN  a token id, or "TEXT" (the one token that text encodes to)
 *
 * `parseMetricSyntax` checks the syntax alone; `resolveMetricSpec` turns it into absolute
 * positions and ids for a prompt (and a tokenizer, for quoted text), checking every number;
 * `specToMetric` gives the metric the engine computes (src/model/metric.ts). Errors are
 * `MetricSpecError`s whose message names the spec and the problem; `MetricSpecError.notApplicable`
 * marks a well-formed metric that does not fit this prompt (too short, a token that is not there).
 */
import { logProbMetric, logitDiffMetric, lossMetric, probMetric, type Metric } from '../model/metric.ts';

const SYNTAX = {
  'logit-diff': { syntax: 'logit-diff:POS:GOOD:BAD', fields: ['POS', 'GOOD', 'BAD'], example: 'logit-diff:-1:631:751' },
  logprob: { syntax: 'logprob:POS:TOKEN', fields: ['POS', 'TOKEN'], example: 'logprob:-1:631' },
  prob: { syntax: 'prob:POS:TOKEN', fields: ['POS', 'TOKEN'], example: 'prob:-1:631' },
  loss: { syntax: 'loss:START:END', fields: ['START', 'END'], example: 'loss:0:-1' },
} as const;

type Kind = keyof typeof SYNTAX;
const KINDS = Object.keys(SYNTAX) as Kind[];

export const METRIC_SPECS: readonly string[] = KINDS.map((k) => SYNTAX[k].syntax);
/** "logit-diff:POS:GOOD:BAD, logprob:POS:TOKEN, prob:POS:TOKEN or loss:START:END". */
const METRIC_LIST = `${METRIC_SPECS.slice(0, -1).join(', ')} or ${METRIC_SPECS[METRIC_SPECS.length - 1]}`;

export class MetricSpecError extends Error {
  override name = 'MetricSpecError';
  constructor(
    message: string,
    /** True for a well-formed metric that does not fit this prompt (the prompt changed under it). */
    readonly notApplicable = false,
  ) {
    super(message);
  }
}

/** A position: an index (negative: from the end), or the text of a token (its last occurrence). */
export type PosRef = number | { text: string };
/** A token: its id, or the text it encodes from. */
export type TokenRef = number | { text: string };

export type MetricSpec =
  | { kind: 'logit-diff'; pos: PosRef; good: TokenRef; bad: TokenRef; text: string }
  | { kind: 'logprob' | 'prob'; pos: PosRef; token: TokenRef; text: string }
  | { kind: 'loss'; start: number; end: number; text: string };

/** A metric for one prompt: every position absolute, every token an id. */
export type ResolvedMetricSpec =
  | { kind: 'logit-diff'; pos: number; good: number; bad: number; text: string }
  | { kind: 'logprob' | 'prob'; pos: number; token: number; text: string }
  | { kind: 'loss'; start: number; end: number; text: string };

/** What resolving quoted token text needs (a model's tokenizer). */
export interface TokenEncoder {
  encode(text: string): number[];
}

/** Splits on ':' outside double-quoted (JSON) strings. */
function fields(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted && ch === '\\') {
      cur += ch + (text[i + 1] ?? '');
      i++;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === ':' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** A quoted field's text, or null when the field is not quoted. */
function quotedText(s: string, spec: string, field: string, syntax: string): string | null {
  if (!s.startsWith('"')) return null;
  try {
    const v: unknown = JSON.parse(s);
    if (typeof v === 'string' && v !== '') return v;
  } catch {
    // fall through
  }
  throw new MetricSpecError(`metric "${spec}": ${field} ${s} is not a quoted token text such as " Mary"; expected ${syntax}`);
}

/** Parses e.g. "logit-diff:-1:631:751", `logit-diff:-1:" Mary":" John"` or "loss:0:-1" (syntax only). */
export function parseMetricSyntax(text: string): MetricSpec {
  const [kindText, ...rest] = fields(text);
  if (!(KINDS as string[]).includes(kindText)) {
    if (rest.length === 0) throw new MetricSpecError(`metric "${text}": expected ${METRIC_LIST} (e.g. logit-diff:-1:631:751)`);
    throw new MetricSpecError(`metric "${text}": unknown metric "${kindText}"; expected ${METRIC_LIST}`);
  }
  const kind = kindText as Kind;
  const { syntax, fields: names, example } = SYNTAX[kind];
  if (rest.length !== names.length) {
    throw new MetricSpecError(`metric "${text}": expected ${syntax} (${names.length} fields after "${kind}:", e.g. ${example})`);
  }
  const int = (s: string, i: number, signed: boolean) => {
    // Digits only: Number() would accept "", "1e3" and "0x10".
    const v = (signed ? /^-?\d+$/ : /^\d+$/).test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(v)) {
      throw new MetricSpecError(`metric "${text}": ${names[i]} "${s}" is not ${signed ? 'an integer' : 'a non-negative integer'}${i === 0 ? ' or a quoted token' : ''}; expected ${syntax}`);
    }
    return v;
  };
  const pos = (i: number): PosRef => {
    const q = quotedText(rest[i], text, names[i], syntax);
    return q !== null ? { text: q } : int(rest[i], i, true);
  };
  const token = (i: number): TokenRef => {
    const q = quotedText(rest[i], text, names[i], syntax);
    return q !== null ? { text: q } : int(rest[i], i, false);
  };
  switch (kind) {
    case 'logit-diff':
      return { kind, pos: pos(0), good: token(1), bad: token(2), text };
    case 'logprob':
    case 'prob':
      return { kind, pos: pos(0), token: token(1), text };
    case 'loss': {
      const [start, end] = [int(rest[0], 0, true), int(rest[1], 1, true)];
      if (start >= 0 && end >= 0 && start >= end) throw new MetricSpecError(`metric "${text}": START ${start} must be less than END ${end} (the span is START .. END-1)`);
      return { kind, start, end, text };
    }
  }
}

/** True when the metric uses a position counted from the end or a token given as text. */
export function isPromptRelative(m: MetricSpec): boolean {
  if (m.kind === 'loss') return m.start < 0 || m.end < 0;
  const refs: (PosRef | TokenRef)[] = m.kind === 'logit-diff' ? [m.pos, m.good, m.bad] : [m.pos, m.token];
  return refs.some((r) => typeof r !== 'number' || r < 0);
}

const show = (r: PosRef | TokenRef) => (typeof r === 'number' ? String(r) : JSON.stringify(r.text));

/**
 * The metric for a prompt (`ids`): absolute positions, token ids, all checked against the
 * prompt's length and the vocabulary. Quoted text needs `tokenizer`.
 */
export function resolveMetricSpec(m: MetricSpec, ids: readonly number[], dVocab: number, tokenizer?: TokenEncoder | null): ResolvedMetricSpec {
  const T = ids.length;
  const na = (why: string) => new MetricSpecError(`metric "${m.text}" does not apply to this ${T}-token prompt: ${why}`, true);
  const token = (r: TokenRef, what: string): number => {
    let id: number;
    if (typeof r === 'number') id = r;
    else {
      if (!tokenizer) throw new MetricSpecError(`metric "${m.text}": ${what} ${show(r)} is text, and this model has no tokenizer; give a token id`);
      const enc = tokenizer.encode(r.text);
      if (enc.length !== 1) throw new MetricSpecError(`metric "${m.text}": ${what} ${show(r)} is ${enc.length} tokens for this tokenizer (${enc.join(', ')}), not one`);
      id = enc[0];
    }
    if (id >= dVocab) throw new MetricSpecError(`metric "${m.text}": ${what} ${id} is not in the vocabulary (ids are 0 .. ${dVocab - 1}, d_vocab ${dVocab})`);
    return id;
  };
  const position = (r: PosRef): number => {
    if (typeof r === 'number') {
      const p = r < 0 ? T + r : r;
      if (r < 0 && p < 0) throw na(`position ${r} counts back past the first token`);
      if (p >= T) throw na(`position ${r} is out of range; the prompt has ${T} positions (0 .. ${T - 1})`);
      return p;
    }
    const id = token(r, 'position token');
    const p = ids.lastIndexOf(id);
    if (p < 0) throw na(`the token ${show(r)} (id ${id}) is not in the prompt`);
    return p;
  };
  switch (m.kind) {
    case 'logit-diff':
      return { kind: m.kind, pos: position(m.pos), good: token(m.good, 'GOOD token'), bad: token(m.bad, 'BAD token'), text: m.text };
    case 'logprob':
    case 'prob':
      return { kind: m.kind, pos: position(m.pos), token: token(m.token, 'token'), text: m.text };
    case 'loss': {
      const start = m.start < 0 ? T + m.start : m.start;
      const end = m.end < 0 ? T + m.end : m.end;
      if (start < 0) throw na(`START ${m.start} counts back past the first token`);
      if (end > T - 1) {
        throw na(`END ${m.end} is out of range; the prompt has ${T} positions and the last one has no next token, so END <= ${T - 1}`);
      }
      if (start >= end) throw na(`the span START ${m.start} .. END ${m.end} is empty here (positions ${start} .. ${end - 1})`);
      return { kind: m.kind, start, end, text: m.text };
    }
  }
}

/**
 * Checks the metric against the prompt length (`nPos`) and the model's vocabulary, as far as it
 * can be without the prompt's tokens (quoted text is checked when the metric is resolved).
 */
export function checkMetricSpec(m: MetricSpec, nPos: number, dVocab: number): void {
  const placeholder = new Array<number>(nPos).fill(-1);
  const numeric = (r: PosRef | TokenRef) => (typeof r === 'number' ? r : 0);
  const stripped: MetricSpec =
    m.kind === 'loss'
      ? m
      : m.kind === 'logit-diff'
        ? { ...m, pos: typeof m.pos === 'number' ? m.pos : -1, good: numeric(m.good), bad: numeric(m.bad) }
        : { ...m, pos: typeof m.pos === 'number' ? m.pos : -1, token: numeric(m.token) };
  resolveMetricSpec(stripped, placeholder, dVocab);
}

/** The engine's metric for `tokens` (the prompt: a loss predicts its next tokens). */
export function specToMetric(m: MetricSpec, tokens: readonly number[], dVocab = Infinity, tokenizer?: TokenEncoder | null): Metric {
  const r = resolveMetricSpec(m, tokens, dVocab, tokenizer);
  switch (r.kind) {
    case 'logit-diff':
      return logitDiffMetric(r.pos, r.good, r.bad);
    case 'logprob':
      return logProbMetric(r.pos, r.token);
    case 'prob':
      return probMetric(r.pos, r.token);
    case 'loss':
      return lossMetric(tokens, r.start, r.end);
  }
}

/** Parses a spec into the engine's metric for `tokens` (the prompt a loss predicts). */
export function parseMetricSpec(text: string, tokens: readonly number[] = [], tokenizer?: TokenEncoder | null): Metric {
  return specToMetric(parseMetricSyntax(text), tokens, Infinity, tokenizer);
}

/** The (last) position whose logits the metric reads: POS, or END-1 for a loss. */
export function metricSpecReadPos(m: ResolvedMetricSpec): number {
  return m.kind === 'loss' ? m.end - 1 : m.pos;
}

const posText = (r: PosRef) => (typeof r === 'number' ? (r < 0 ? `pos ${r} (from the end)` : `pos ${r}`) : `the last ${JSON.stringify(r.text)}`);
const tokText = (r: TokenRef) => (typeof r === 'number' ? String(r) : JSON.stringify(r.text));

/** "logit-diff at pos 10: logit[631] − logit[751]", for human summaries. */
export function describeMetricSpec(m: MetricSpec): string {
  switch (m.kind) {
    case 'logit-diff':
      return `logit-diff at ${posText(m.pos)}: logit[${tokText(m.good)}] − logit[${tokText(m.bad)}]`;
    case 'logprob':
      return `log p(${tokText(m.token)}) at ${posText(m.pos)}`;
    case 'prob':
      return `p(${tokText(m.token)}) at ${posText(m.pos)}`;
    case 'loss':
      return `loss (mean cross-entropy of the next token) at pos ${m.start} .. ${m.end < 0 ? `${m.end} (from the end)` : m.end - 1}`;
  }
}

/** Which way is better for the metric: a loss is better lower, the rest higher. */
export function metricBetter(m: Pick<MetricSpec, 'kind'>): 'higher' | 'lower' {
  return m.kind === 'loss' ? 'lower' : 'higher';
}

export function formatMetricSpec(m: Metric): string {
  switch (m.kind) {
    case 'logit-diff':
      return `logit-diff:${m.pos}:${m.good}:${m.bad}`;
    case 'logprob':
    case 'prob':
      return `${m.kind}:${m.pos}:${m.token}`;
    case 'loss':
      return `loss:${m.start}:${m.end}`;
  }
}
