/**
 * The SAE benchmark (a program, not a test): `npm run bench:sae -- [options]`.
 *
 * A 16,384-latent JumpReLU SAE at d_model 640 (Gemma Scope 2's width on Gemma 3 270M's residual
 * stream) against the forward of a Gemma-3-270M-shaped model (random weights, fp32: 18 layers,
 * d_model 640, 4 heads of 256 with one key/value head, d_mlp 2048, vocabulary 262,144) at the
 * same positions:
 *   sae       encode (x @ W_enc + b_enc), JumpReLU and the sparse-aware decode for T rows: the
 *             SAE's dispatches alone, submitted and waited for, inputs already on the GPU
 *   forward   model.run on T tokens, logits read back
 *   spliced   the same forward with the SAE spliced at blocks.12.hook_resid_post (error term on)
 *             (the last layer's with --layers 12 or fewer)
 *
 * The SAE's input is the model's own residual stream at that hook (one cached run per length),
 * and its encoder is scaled to that stream's root-mean-square so that about 60 of the 16,384
 * features fire per position, as in Gemma Scope's SAEs; a random SAE on an unscaled input fires
 * thousands, and the decode's cost grows with them.
 *
 *   --pos LIST    positions to time (default 32,128)
 *   --reps N      timed repetitions (after one untimed warm-up; default 5)
 *   --layers N    layers of the model (default 18)
 *
 * Prints one JSON object; every number in it comes from this one run.
 */
import { acquireGpu } from '../src/gpu/device.ts';
import { submitSteps, type Params } from '../src/gpu/recorder.ts';
import { Tensor } from '../src/gpu/tensor.ts';
import { modelFromWeights } from '../src/hooks/load.ts';
import { normalizeConfig } from '../src/model/normalize-config.ts';
import type { HostMatrix, HostWeights } from '../src/model/host-weights.ts';
import type { ModelConfig } from '../src/model/config.ts';
import { Sae, type HostSae } from '../src/features/sae.ts';
import type { SaeConfig } from '../src/features/sae-config.ts';
import { withErrorTerm } from '../src/hooks/splice.ts';
import { benchOptions } from './options.ts';

const options = benchOptions('bench:sae', { pos: {}, reps: {}, layers: {} });
const POS = options.ints('pos', '32,128');
const REPS = options.int('reps', 5);
const LAYERS = options.int('layers', 18);
const D = 640;
const D_SAE = 16384;
/** Where the SAE sits: layer 12's residual stream (Gemma Scope 2's layer for the demo), or the last layer of a shorter model. */
const HOOK = `blocks.${Math.min(12, LAYERS - 1)}.hook_resid_post` as const;
const log = (msg: string) => process.stderr.write(`bench:sae: ${msg}\n`);
const round = (x: number, d = 2) => +x.toFixed(d);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Gemma 3 270M's config.json fields that shape the model (its Hub config). */
function gemma270mConfig(layers: number): ModelConfig {
  return normalizeConfig(
    {
      architectures: ['Gemma3ForCausalLM'],
      model_type: 'gemma3_text',
      hidden_size: D,
      num_hidden_layers: layers,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 256,
      intermediate_size: 2048,
      vocab_size: 262144,
      max_position_embeddings: 32768,
      sliding_window: 512,
      query_pre_attn_scalar: 256,
      rope_theta: 1_000_000,
      rope_local_base_freq: 10_000,
      sliding_window_pattern: 6,
      hidden_activation: 'gelu_pytorch_tanh',
      rms_norm_eps: 1e-6,
      tie_word_embeddings: true,
    },
    'Gemma 3 270M shape',
  );
}

let seed = 1;
function rand(n: number, scale: number, center = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    out[i] = center + (seed / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}
const m = (shape: number[], scale = 0.02, center = 0): HostMatrix => ({
  shape,
  data: rand(
    shape.reduce((a, b) => a * b, 1),
    scale,
    center,
  ),
});

function randomGemma(c: ModelConfig): HostWeights {
  const { d_model: C, n_heads: H, n_key_value_heads: K, d_head: dh, d_mlp: M } = c;
  return {
    W_E: m([c.d_vocab, C]),
    layers: Array.from({ length: c.n_layers }, () => ({
      ln1_w: m([C], 0.1, 1),
      W_Q: m([C, H * dh]),
      b_Q: m([H * dh], 0),
      W_K: m([C, K * dh]),
      b_K: m([K * dh], 0),
      W_V: m([C, K * dh]),
      b_V: m([K * dh], 0),
      W_O: m([H * dh, C]),
      b_O: m([C], 0),
      q_norm_w: m([dh], 0.1, 1),
      k_norm_w: m([dh], 0.1, 1),
      ln1_post_w: m([C], 0.1, 1),
      ln2_w: m([C], 0.1, 1),
      W_gate: m([C, M]),
      b_gate: m([M], 0),
      W_in: m([C, M]),
      b_in: m([M], 0),
      W_out: m([M, C]),
      b_out: m([C], 0),
      ln2_post_w: m([C], 0.1, 1),
    })),
    lnf_w: m([C], 0.1, 1),
  };
}

/** A random JumpReLU SAE whose encoder is scaled for inputs of root-mean-square `rms`. */
function randomSae(rms: number): { cfg: SaeConfig; host: HostSae } {
  const cfg: SaeConfig = {
    source: 'random 16k JumpReLU SAE',
    format: 'saelens',
    architecture: 'jumprelu',
    transcoder: false,
    skip: false,
    d_in: D,
    d_sae: D_SAE,
    d_out: D,
    hook_name: HOOK,
    hook_name_out: HOOK,
    k: null,
    apply_b_dec_to_input: false,
    model_name: null,
    input_gain: null,
  };
  // Pre-activations with a standard deviation near 0.67 and thresholds near 2.7 of them: an L0
  // near 60, like Gemma Scope's SAEs, whatever the scale of the model's residual stream.
  const W_enc = rand(D * D_SAE, 0.08 / (rms * Math.sqrt(3)));
  const host: HostSae = { W_enc, b_enc: rand(D_SAE, 0.1), W_dec: rand(D_SAE * D, 0.05), b_dec: rand(D, 0.05), threshold: rand(D_SAE, 0.1, 1.8), W_skip: null };
  return { cfg, host };
}

async function main() {
  const gpu = await acquireGpu();
  log(`adapter ${gpu.adapterName}`);
  const cfg = gemma270mConfig(LAYERS);
  let t0 = performance.now();
  const model = await modelFromWeights(gpu, cfg, randomGemma(cfg));
  log(`model uploaded (${(model.weightBytes / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const prompt = (T: number) => [Array.from({ length: T }, (_, i) => (i * 7919 + 13) % cfg.d_vocab)];
  // The model's own residual stream at the SAE's hook: the SAE's input, scaled to it.
  const resid = new Map<number, Float32Array>();
  for (const T of POS) {
    const r = await model.run(prompt(T), { cache: [HOOK] });
    resid.set(T, await r.cache.read(HOOK));
    r.release();
  }
  const all = [...resid.values()].flatMap((a) => Array.from(a));
  const rms = Math.sqrt(all.reduce((s2, v) => s2 + v * v, 0) / all.length);
  const { cfg: scfg, host } = randomSae(rms);
  t0 = performance.now();
  const sae = await Sae.upload(gpu, scfg, host);
  log(`SAE uploaded (${(sae.weightBytes / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s; residual rms ${rms.toFixed(3)}`);

  const results = [];
  for (const T of POS) {
    const ids = prompt(T);
    // SAE alone: encode, JumpReLU, decode of the model's T residual rows, already on the GPU.
    const params: Params[] = [];
    const x = Tensor.from(gpu, resid.get(T)!, [T, D], 'x');
    const pre = Tensor.empty(gpu, [T, D_SAE], 'pre');
    const acts = Tensor.empty(gpu, [T, D_SAE], 'acts');
    const recons = Tensor.empty(gpu, [T, D], 'recons');
    const list = Tensor.empty(gpu, [T, D_SAE], 'active features');
    const counts = Tensor.empty(gpu, [T], 'active counts');
    const steps = [
      ...sae.encodeDispatches(x.buffer, T, pre.buffer, params, 'bench'),
      sae.activationDispatch(pre.buffer, acts.buffer, T, params, 'bench'),
      ...sae.decodeDispatches(acts.buffer, T, recons.buffer, params, 'bench', { compact: { list: list.buffer, counts: counts.buffer } }),
    ];
    const saeTimes: number[] = [];
    for (let r = 0; r <= REPS; r++) {
      const s = performance.now();
      submitSteps(gpu, steps, 'bench sae');
      await gpu.device.queue.onSubmittedWorkDone();
      if (r > 0) saeTimes.push(performance.now() - s);
    }
    const l0 = (await acts.read()).reduce((n, v) => n + (v > 0 ? 1 : 0), 0) / T;
    for (const t of [x, pre, acts, recons, list, counts]) t.release();
    for (const p of params) p.destroy();

    // Plain and spliced forwards alternate rep by rep, so a change in the machine's load during
    // the run weighs on both alike.
    const once = async (saes: boolean) => {
      const s = performance.now();
      const run = await model.run(ids, saes ? { saes: [withErrorTerm(sae)] } : {});
      await run.logits!.read();
      run.release();
      return performance.now() - s;
    };
    const plainTimes: number[] = [];
    const splicedTimes: number[] = [];
    for (let r = 0; r <= REPS; r++) {
      const [a, b] = [await once(false), await once(true)];
      if (r > 0) {
        plainTimes.push(a);
        splicedTimes.push(b);
      }
    }
    const fwd = median(plainTimes);
    const spliced = median(splicedTimes);
    const saeMs = median(saeTimes);
    results.push({
      pos: T,
      sae_encode_decode_ms: round(saeMs),
      sae_l0: round(l0, 1),
      forward_ms: round(fwd),
      spliced_forward_ms: round(spliced),
      sae_over_forward: round(saeMs / fwd, 3),
      spliced_over_forward: round(spliced / fwd, 3),
    });
    log(`T=${T}: SAE ${saeMs.toFixed(1)} ms, forward ${fwd.toFixed(0)} ms, spliced ${spliced.toFixed(0)} ms`);
  }
  console.log(
    JSON.stringify(
      {
        adapter: gpu.adapterName,
        model: `Gemma 3 270M shape, ${LAYERS} layers, random fp32 weights`,
        sae: `JumpReLU, d_in ${D}, d_sae ${D_SAE}, fp32, at ${HOOK}`,
        reps: REPS,
        results,
      },
      null,
      1,
    ),
  );
  sae.destroy();
  model.destroy();
  process.exit(0); // Dawn keeps Node's event loop alive
}

main().catch((e) => {
  console.error(`bench:sae: ${(e as Error).message}`);
  process.exit(1);
});
