/** Fixture helpers for the model-loading tests (Node only). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import type { HostMatrix, HostWeights } from '../../src/model/host-weights.ts';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const GPT2_FIXTURES = ['tiny-gpt2-random', 'induction-2l'] as const;
export type Gpt2Fixture = (typeof GPT2_FIXTURES)[number];

export function fixtureBytes(fixture: string, file: string): Uint8Array {
  const b = readFileSync(join(FIXTURES, fixture, file));
  // An exact, 0-offset copy (Node Buffers may share a pooled ArrayBuffer).
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function fixtureJson(fixture: string, file: string): unknown {
  return JSON.parse(readFileSync(join(FIXTURES, fixture, file), 'utf8'));
}

export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Every tensor of a fixture's model.safetensors, in file order. */
export function fixtureTensors(fixture: string): NamedTensor[] {
  const f = new SafetensorsFile(fixtureBytes(fixture, 'model.safetensors'), `${fixture}/model.safetensors`);
  return f.names.map((name) => ({ name, shape: f.info(name).shape, data: f.float32(name).slice() }));
}

/** [path, matrix] for every matrix of a HostWeights, in a fixed order. */
export function flattenWeights(w: HostWeights): Array<[string, HostMatrix]> {
  const out: Array<[string, HostMatrix]> = [
    ['W_E', w.W_E],
    ['W_pos', w.W_pos!],
    ['lnf_w', w.lnf_w],
    ['lnf_b', w.lnf_b!],
  ];
  w.layers.forEach((l, i) => {
    for (const [k, m] of Object.entries(l)) out.push([`layers.${i}.${k}`, m as HostMatrix]);
  });
  return out;
}

/** null when two HostWeights are bit-identical, else the first difference. */
export function weightsDiff(a: HostWeights, b: HostWeights): string | null {
  const fa = flattenWeights(a);
  const fb = flattenWeights(b);
  if (fa.length !== fb.length) return `matrix count ${fa.length} vs ${fb.length}`;
  for (let i = 0; i < fa.length; i++) {
    const [name, x] = fa[i]!;
    const [nameB, y] = fb[i]!;
    if (name !== nameB) return `${name} vs ${nameB}`;
    if (x.shape.join() !== y.shape.join()) return `${name}: shape ${x.shape} vs ${y.shape}`;
    if (x.data.length !== y.data.length) return `${name}: length ${x.data.length} vs ${y.data.length}`;
    const bx = new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength);
    const by = new Uint8Array(y.data.buffer, y.data.byteOffset, y.data.byteLength);
    if (!Buffer.from(bx).equals(Buffer.from(by))) return `${name}: data differs`;
  }
  return null;
}
