import { describe, it, expect } from 'vitest';
import { gpt2HostWeights } from '../../src/model/gpt2-weights.ts';
import { normalizeConfig } from '../../src/model/normalize-config.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.ts';
import { type NamedTensor, fixtureBytes, fixtureJson, fixtureTensors } from './fixtures.ts';

const FIX = 'tiny-gpt2-random';
const cfg = () => normalizeConfig(fixtureJson(FIX, 'config.json'));
const lookup = (ts: NamedTensor[]) => new SafetensorsFile(writeSafetensors(ts), 'test.safetensors');

describe('gpt2HostWeights', () => {
  it('splits c_attn into Q, K, V column blocks', async () => {
    const f = new SafetensorsFile(fixtureBytes(FIX, 'model.safetensors'), 'model.safetensors');
    const c = cfg();
    const w = await gpt2HostWeights(f, c);
    const d = c.d_model;
    for (let l = 0; l < c.n_layers; l++) {
      const cw = f.float32(`transformer.h.${l}.attn.c_attn.weight`); // [d, 3d]
      const cb = f.float32(`transformer.h.${l}.attn.c_attn.bias`); // [3d]
      const L = w.layers[l]!;
      const mats = [L.W_Q, L.W_K, L.W_V];
      const biases = [L.b_Q, L.b_K, L.b_V];
      for (let blk = 0; blk < 3; blk++) {
        expect(mats[blk]!.shape).toEqual([d, d]);
        expect(biases[blk]!.shape).toEqual([d]);
        for (let r = 0; r < d; r++) {
          for (let col = 0; col < d; col++) {
            if (mats[blk]!.data[r * d + col] !== cw[r * 3 * d + blk * d + col]) {
              throw new Error(`layer ${l} block ${blk} [${r}, ${col}] differs`);
            }
          }
        }
        expect(Array.from(biases[blk]!.data)).toEqual(Array.from(cb.subarray(blk * d, (blk + 1) * d)));
      }
      expect(Array.from(L.W_out.data)).toEqual(Array.from(f.float32(`transformer.h.${l}.mlp.c_proj.weight`)));
    }
    expect(w.W_E.shape).toEqual([1000, 64]);
    expect(w.W_pos!.shape).toEqual([64, 64]);
    expect(w.layers[0]!.W_in.shape).toEqual([64, 256]);
    expect(w.layers[0]!.W_out.shape).toEqual([256, 64]);
    expect(w.layers[0]!.W_O.shape).toEqual([64, 64]);
    expect(Array.from(w.lnf_b!.data)).toEqual(Array.from(f.float32('transformer.ln_f.bias')));
  });

  it('a wrong shape names the tensor, expected and actual shape', async () => {
    const ts = fixtureTensors(FIX).map((t) => (t.name === 'transformer.h.1.mlp.c_fc.weight' ? { ...t, shape: [128, 128] } : t));
    await expect(gpt2HostWeights(lookup(ts), cfg())).rejects.toThrow('tensor "transformer.h.1.mlp.c_fc.weight": expected shape [64, 256] from the config, got [128, 128]');
  });

  it('a missing tensor is named', async () => {
    const ts = fixtureTensors(FIX).filter((t) => t.name !== 'transformer.h.0.ln_2.bias');
    await expect(gpt2HostWeights(lookup(ts), cfg())).rejects.toThrow('GPT-2 checkpoint is missing tensor "transformer.h.0.ln_2.bias" (expected shape [64])');
  });

  it('rejects a non-GPT-2 lookup, extra layers and untied unembedding', async () => {
    const ts = fixtureTensors(FIX);
    await expect(gpt2HostWeights(lookup(ts.filter((t) => !t.name.endsWith('wte.weight'))), cfg())).rejects.toThrow(/neither "transformer\.wte\.weight" nor "wte\.weight"/);
    await expect(gpt2HostWeights(lookup(ts), { ...cfg(), n_layers: 1 })).rejects.toThrow(/layer "transformer\.h\.1" but the config says n_layer = 1/);
    const untied = [...ts, { name: 'lm_head.weight', shape: [1000, 64], data: new Float32Array(64000) }];
    await expect(gpt2HostWeights(lookup(untied), { ...cfg(), tied_embeddings: false })).rejects.toThrow(/untied unembedding .* not supported for GPT-2 yet/);
  });
});
