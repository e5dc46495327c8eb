/**
 * Edge attribution patching (EAP; Syed et al. 2023) and its integrated-gradients form (EAP-IG;
 * Hanna et al. 2024), with the nodes and edges TransformerLens' attribution patching (#1781)
 * and the EAP-IG reference implementation use:
 *
 *   senders    `input` (the embeddings: resid_pre of layer 0), every head's output `a{l}.h{h}`
 *              (its z through its rows of W_O: TransformerLens' hook_result), every MLP `m{l}`
 *   receivers  every head's query, key and value input `a{l}.h{h}<q>` / `<k>` / `<v>` (the
 *              residual stream that head's projection reads, before ln1: TransformerLens' split
 *              hook_q_input / hook_k_input / hook_v_input; keys and values per key/value head),
 *              every MLP's input `m{l}` (before ln2), and `logits` (the final residual stream)
 *   edge u -> v  when u writes to the residual stream before v reads it (a parallel block's MLP
 *              does not read its own layer's heads); its score is
 *              sum over positions of (u_clean - u_corrupt) . d metric / d (v's input),
 *              the gradient taken on the corrupted run: the first-order effect of patching u's
 *              clean output into v's input alone (clean into corrupt, as attributionSweep).
 *
 * The gradient of a receiver's own input is the gradient of its projection's output carried back
 * through its weights and its norm (ln1 / ln2, the norm's scale included), per head. With
 * `igSteps` m > 1 (EAP-IG), that gradient is averaged over m runs whose embeddings are
 * interpolated, corrupt + (k / m) (clean - corrupt) for k = 1 .. m, as the EAP-IG reference
 * does; the activation differences stay those of the clean and corrupted runs.
 *
 * The gradients come from `runWithGrad`; the per-head input gradients and the scores are float64
 * reductions on the CPU (for GPT-2-small at 128 positions about 10 GFLOP: seconds, not
 * milliseconds).
 */
import type { SiteName } from '../model/hook-points.ts';
import type { Model } from '../hooks/model.ts';
import type { ActivationCache } from '../hooks/activation-cache.ts';
import { patchFrom } from '../hooks/interventions.ts';
import { Tensor } from '../gpu/tensor.ts';
import { validateTokens } from '../model/tokens.ts';
import { validateMetric, type Metric } from '../model/metric.ts';
import { baseRun } from './sweep.ts';

export interface EdgeAttributionOptions {
  /** Integrated-gradient steps (EAP-IG); 1 (default) is EAP, gradients on the corrupted run. */
  igSteps?: number;
}

export interface EdgeScores {
  senders: string[];
  receivers: string[];
  /** [senders, receivers] row-major; NaN where u -> v is not an edge (u does not precede v). */
  scores: Float64Array;
  /** Every edge, by |score| descending: "u->v". */
  edges: Array<{ edge: string; sender: string; receiver: string; score: number }>;
  clean: number;
  corrupt: number;
  igSteps: number;
}

const range = (n: number) => [...Array(n).keys()];

interface Receiver {
  name: string;
  layer: number;
  /** Per position [T, C]: d metric / d input. */
  grad: Float64Array;
  /** Reads attention heads of its own layer (a sequential block's MLP) and the final stream. */
  sameLayerHeads: boolean;
}

/** The norm's input gradient (hook_scale included) from dn = gain * u, one row of C. */
function normBackwardRow(dx: Float64Array, o: number, u: Float64Array, w: Float32Array, n: Float32Array, no: number, s: number, C: number, rms: boolean): void {
  let dot = 0;
  let mean = 0;
  for (let c = 0; c < C; c++) {
    const dn = u[c] * w[c];
    dot += dn * n[no + c];
    mean += dn;
  }
  const ds = -dot / s;
  mean = rms ? 0 : mean / s / C;
  for (let c = 0; c < C; c++) dx[o + c] += (u[c] * w[c]) / s - mean + (ds * n[no + c]) / C;
}

export async function edgeAttribution(model: Model, clean: readonly number[], corrupt: readonly number[], metric: Metric, options: EdgeAttributionOptions = {}): Promise<EdgeScores> {
  const cfg = model.config;
  const { n_layers: L, n_heads: H, n_key_value_heads: Hkv, d_head: dh, d_model: C } = cfg;
  const steps = options.igSteps ?? 1;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`igSteps must be a positive integer, not ${steps}`);
  if (clean.length !== corrupt.length) throw new Error(`the clean and corrupted prompts must have the same length (${clean.length} and ${corrupt.length} tokens)`);
  validateTokens([clean, corrupt], cfg);
  const T = clean.length;
  validateMetric(metric, T, cfg.d_vocab);
  if (cfg.post_norms) {
    // A head's edges need its own output added into the residual stream; Gemma 3's ln1_post
    // normalizes the heads' sum before it is added, so no head has an output of its own there.
    throw new Error(
      `edge attribution needs each head's output added into the residual stream; ${cfg.architecture}'s post-attention norm (ln1_post) normalizes the sum of the heads before it is added. Use attributionSweep (site z or attn_out) instead`,
    );
  }
  const rms = cfg.normalization === 'RMS';
  const gated = cfg.gated_mlp;
  const layers = range(L);
  const senderActs: SiteName[] = ['blocks.0.hook_resid_pre', ...layers.flatMap((l): SiteName[] => [`blocks.${l}.attn.hook_z`, `blocks.${l}.hook_mlp_out`])];
  const normActs = layers.flatMap((l) => [`blocks.${l}.ln1.hook_normalized`, `blocks.${l}.ln1.hook_scale`, `blocks.${l}.ln2.hook_normalized`, `blocks.${l}.ln2.hook_scale`]);
  const gradNames = [
    ...layers.flatMap((l) => [`blocks.${l}.attn.hook_q`, `blocks.${l}.attn.hook_k`, `blocks.${l}.attn.hook_v`, `blocks.${l}.mlp.hook_pre`, ...(gated ? [`blocks.${l}.mlp.hook_pre_linear`] : [])]),
    `blocks.${L - 1}.hook_resid_post`,
  ];

  // Weights, TransformerLens' shapes: W_Q [H, C, dh], W_K / W_V stored per key/value head.
  const kv = Hkv !== H ? '_' : '';
  const w = new Map<string, Float32Array>();
  for (const l of layers) {
    for (const n of ['ln1.w', 'ln2.w', 'attn.W_Q', `attn.${kv}W_K`, `attn.${kv}W_V`, 'attn.W_O', 'mlp.W_in', ...(gated ? ['mlp.W_gate'] : [])])
      w.set(`${l}.${n}`, (await model.weight(`blocks.${l}.${n}`)).data);
  }

  const cleanRun = await baseRun(model, clean, (n) => senderActs.includes(n), metric);
  const read = async (cache: ActivationCache, n: SiteName) => cache.get(n).read();
  try {
    // Receivers' input gradients, averaged over the IG steps.
    const receivers: Receiver[] = [];
    for (const l of layers) {
      for (const part of ['q', 'k', 'v'] as const) {
        for (const h of range(part === 'q' ? H : Hkv)) receivers.push({ name: `a${l}.h${h}<${part}>`, layer: l, grad: new Float64Array(T * C), sameLayerHeads: false });
      }
      receivers.push({ name: `m${l}`, layer: l, grad: new Float64Array(T * C), sameLayerHeads: !cfg.parallel_attn_mlp });
    }
    receivers.push({ name: 'logits', layer: L, grad: new Float64Array(T * C), sameLayerHeads: true });
    const byName = new Map(receivers.map((r) => [r.name, r]));

    // Adds one run's receiver input gradients, weighted by 1 / steps.
    const inv = 1 / steps;
    const M = cfg.d_mlp;
    const u = new Float64Array(C);
    const addGradients = async (r: { cache: ActivationCache; grads: ActivationCache }) => {
      for (const l of layers) {
        const [n1, s1, n2, s2] = await Promise.all((['ln1.hook_normalized', 'ln1.hook_scale', 'ln2.hook_normalized', 'ln2.hook_scale'] as const).map((x) => read(r.cache, `blocks.${l}.${x}`)));
        const w1 = w.get(`${l}.ln1.w`)!;
        const w2 = w.get(`${l}.ln2.w`)!;
        for (const part of ['q', 'k', 'v'] as const) {
          const g = await read(r.grads, `blocks.${l}.attn.hook_${part}`); // [1, T, heads, dh]
          const heads = part === 'q' ? H : Hkv;
          const W = w.get(`${l}.attn.${part === 'q' ? '' : kv}W_${part.toUpperCase()}`)!; // [heads, C, dh]
          for (let h = 0; h < heads; h++) {
            const rec = byName.get(`a${l}.h${h}<${part}>`)!;
            for (let t = 0; t < T; t++) {
              for (let c = 0; c < C; c++) {
                let acc = 0; // u = W[h] g[t, h]
                const wo = (h * C + c) * dh;
                const go = (t * heads + h) * dh;
                for (let d = 0; d < dh; d++) acc += W[wo + d] * g[go + d];
                u[c] = acc * inv;
              }
              normBackwardRow(rec.grad, t * C, u, w1, n1, t * C, s1[t], C, rms);
            }
          }
        }
        // The MLP's input: W_in g_pre (gated: W_gate g_pre + W_in g_pre_linear).
        const gPre = await read(r.grads, `blocks.${l}.mlp.hook_pre`);
        const gLin = gated ? await read(r.grads, `blocks.${l}.mlp.hook_pre_linear`) : null;
        const Wa = w.get(`${l}.mlp.${gated ? 'W_gate' : 'W_in'}`)!; // [C, M]
        const Wb = gated ? w.get(`${l}.mlp.W_in`)! : null;
        const rec = byName.get(`m${l}`)!;
        for (let t = 0; t < T; t++) {
          for (let c = 0; c < C; c++) {
            let acc = 0;
            for (let j = 0; j < M; j++) acc += Wa[c * M + j] * gPre[t * M + j];
            if (Wb && gLin) for (let j = 0; j < M; j++) acc += Wb[c * M + j] * gLin[t * M + j];
            u[c] = acc * inv;
          }
          normBackwardRow(rec.grad, t * C, u, w2, n2, t * C, s2[t], C, rms);
        }
      }
      const gFinal = await read(r.grads, `blocks.${L - 1}.hook_resid_post`);
      const logits = byName.get('logits')!;
      for (let i = 0; i < T * C; i++) logits.grad[i] += gFinal[i] * inv;
    };

    // The corrupted run: its activations, its metric and (EAP) the gradients.
    const corruptActs = new Map<string, Float32Array>();
    let mCorrupt: number;
    {
      const r = await model.runWithGrad([corrupt], metric, { cache: [...senderActs, ...normActs], grads: gradNames });
      try {
        mCorrupt = r.metric[0];
        for (const n of senderActs) corruptActs.set(n, await read(r.cache, n));
        if (steps === 1) await addGradients(r);
      } finally {
        r.release();
      }
    }
    // EAP-IG: gradients of runs whose embeddings move from the corrupted toward the clean ones.
    const cleanEmbed = await read(cleanRun.cache, 'blocks.0.hook_resid_pre');
    const corruptEmbed = corruptActs.get('blocks.0.hook_resid_pre')!;
    for (let k = 1; steps > 1 && k <= steps; k++) {
      const a = k / steps;
      const x = Tensor.from(
        model.gpu,
        corruptEmbed.map((v, i) => v + a * (cleanEmbed[i] - v)),
        [1, T, C],
        'EAP-IG interpolated embeddings',
      );
      try {
        const r = await model.runWithGrad([corrupt], metric, { cache: normActs, grads: gradNames, hooks: [patchFrom('blocks.0.hook_resid_pre', x)] });
        try {
          await addGradients(r);
        } finally {
          r.release();
        }
      } finally {
        x.release();
      }
    }

    // Senders' output differences, [T, C] each: clean - corrupt.
    const senders: Array<{ name: string; layer: number; head: boolean; delta: Float64Array }> = [];
    senders.push({ name: 'input', layer: -1, head: false, delta: Float64Array.from(cleanEmbed, (v, i) => v - corruptEmbed[i]) });
    for (const l of layers) {
      const zc = await read(cleanRun.cache, `blocks.${l}.attn.hook_z`);
      const zx = corruptActs.get(`blocks.${l}.attn.hook_z`)!;
      const WO = w.get(`${l}.attn.W_O`)!; // [H, dh, C]
      for (let h = 0; h < H; h++) {
        const delta = new Float64Array(T * C);
        for (let t = 0; t < T; t++) {
          for (let d = 0; d < dh; d++) {
            const dz = zc[(t * H + h) * dh + d] - zx[(t * H + h) * dh + d];
            if (dz === 0) continue;
            const wo = (h * dh + d) * C;
            for (let c = 0; c < C; c++) delta[t * C + c] += dz * WO[wo + c];
          }
        }
        senders.push({ name: `a${l}.h${h}`, layer: l, head: true, delta });
      }
      const mc = await read(cleanRun.cache, `blocks.${l}.hook_mlp_out`);
      const mx = corruptActs.get(`blocks.${l}.hook_mlp_out`)!;
      senders.push({ name: `m${l}`, layer: l, head: false, delta: Float64Array.from(mc, (v, i) => v - mx[i]) });
    }

    // Scores: sum over positions of delta_u . grad_v, where u precedes v.
    const scores = new Float64Array(senders.length * receivers.length).fill(Number.NaN);
    const edges: EdgeScores['edges'] = [];
    senders.forEach((s, i) => {
      receivers.forEach((r, j) => {
        const precedes = s.layer < r.layer || (s.layer === r.layer && s.head && r.sameLayerHeads && r.name !== 'logits');
        if (!precedes) return;
        let v = 0;
        for (let x = 0; x < T * C; x++) v += s.delta[x] * r.grad[x];
        scores[i * receivers.length + j] = v;
        edges.push({ edge: `${s.name}->${r.name}`, sender: s.name, receiver: r.name, score: v });
      });
    });
    edges.sort((a, b) => Math.abs(b.score) - Math.abs(a.score));
    return { senders: senders.map((s) => s.name), receivers: receivers.map((r) => r.name), scores, edges, clean: cleanRun.metric, corrupt: mCorrupt, igSteps: steps };
  } finally {
    cleanRun.release();
  }
}
