import { describe, it, expect } from 'vitest';
import { SafetensorsError, SafetensorsFile, bf16ToNumber, f16ToNumber, parseSafetensorsHeader, writeSafetensors } from '../../src/model/safetensors.ts';
import { GPT2_FIXTURES, fixtureBytes } from './fixtures.ts';

/** A file with `header` (string or object) as its JSON header and `dataLen` zero bytes of data. */
function build(header: string | object, dataLen = 0, declaredLen?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataLen);
  new DataView(out.buffer).setUint32(0, declaredLen ?? json.length, true);
  out.set(json, 8);
  return out;
}

/** A file holding one 16-bit tensor of the given raw values. */
function halfFile(dtype: 'F16' | 'BF16', values: number[]): SafetensorsFile {
  const bytes = build({ x: { dtype, shape: [values.length], data_offsets: [0, 2 * values.length] } }, 2 * values.length);
  const dataStart = bytes.length - 2 * values.length;
  values.forEach((v, i) => new DataView(bytes.buffer).setUint16(dataStart + 2 * i, v, true));
  return new SafetensorsFile(bytes, 'half.safetensors');
}

function parseError(bytes: Uint8Array): string {
  try {
    parseSafetensorsHeader(bytes, 'bad.safetensors');
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    expect((e as Error).name).toBe('SafetensorsError');
    const msg = (e as Error).message;
    expect(msg.startsWith('bad.safetensors: ')).toBe(true);
    return msg;
  }
  throw new Error('expected a SafetensorsError');
}

describe('writeSafetensors / SafetensorsFile round trip', () => {
  it('writes what it reads, with a padded header and metadata', () => {
    const a = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 3);
    const b = Float32Array.from([1e-30, -0, Infinity, NaN, 3.4e38]);
    const bytes = writeSafetensors(
      [
        { name: 'a', shape: [3, 4], data: a },
        { name: 'b.c', shape: [5], data: b },
        { name: 'empty', shape: [0, 7], data: new Float32Array(0) },
      ],
      { format: 'pt' },
    );
    const headerLen = new DataView(bytes.buffer).getUint32(0, true);
    expect(headerLen % 8).toBe(0);
    const h = parseSafetensorsHeader(bytes, 'rt.safetensors');
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.dataOffset).toBe(8 + headerLen);
    expect(h.tensors.get('a')).toEqual({ name: 'a', dtype: 'F32', shape: [3, 4], begin: 0, end: 48 });

    const f = new SafetensorsFile(bytes, 'rt.safetensors');
    expect(f.names).toEqual(['a', 'b.c', 'empty']);
    expect(f.has('a')).toBe(true);
    expect(f.has('nope')).toBe(false);
    expect(Array.from(f.float32('a'))).toEqual(Array.from(a));
    expect(Array.from(f.float32('b.c'))).toEqual(Array.from(b));
    expect(Object.is(f.float32('b.c')[1], -0)).toBe(true);
    expect(f.float32('empty').length).toBe(0);
    expect(f.bytes('a').length).toBe(48);
    expect(f.bytes('a').buffer).toBe(bytes.buffer); // zero-copy view
  });

  it('accepts a record and reads F32 at an unaligned offset', () => {
    const bytes = writeSafetensors({ w: { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) } });
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const f = new SafetensorsFile(shifted.subarray(1), 'shifted.safetensors');
    expect(Array.from(f.float32('w'))).toEqual([1, 2, 3, 4]);
  });

  it('rejects data whose length does not match the shape', () => {
    expect(() => writeSafetensors([{ name: 'w', shape: [2, 3], data: new Float32Array(5) }])).toThrow(/"w" shape \[2, 3\] has 6 elements but data has 5/);
  });

  it('names similar tensors when one is missing', () => {
    const bytes = writeSafetensors([
      { name: 'h.0.ln_1.weight', shape: [1], data: new Float32Array(1) },
      { name: 'h.0.ln_2.weight', shape: [1], data: new Float32Array(1) },
    ]);
    const f = new SafetensorsFile(bytes, 'm.safetensors');
    expect(() => f.float32('h.0.ln1.weight')).toThrow(/m\.safetensors: no tensor "h\.0\.ln1\.weight".*similar: "h\.0\.ln_1\.weight"/);
  });
});

describe('F16 / BF16 widening', () => {
  it('decodes F16 exactly, including subnormals, inf and NaN', () => {
    const cases: Array<[number, number]> = [
      [0x3c00, 1],
      [0xc000, -2],
      [0x0000, 0],
      [0x3555, 0.333251953125],
      [0x7bff, 65504], // largest normal
      [0x0400, 2 ** -14], // smallest normal
      [0x0001, 2 ** -24], // smallest subnormal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x8001, -(2 ** -24)],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    const f = halfFile('F16', cases.map((c) => c[0]).concat([0x7e00, 0x8000]));
    const out = f.float32('x');
    cases.forEach(([bits, want], i) => {
      expect(out[i]).toBe(want);
      expect(f16ToNumber(bits)).toBe(want);
    });
    expect(Number.isNaN(out[cases.length])).toBe(true);
    expect(Object.is(out[cases.length + 1], -0)).toBe(true);
  });

  it('decodes BF16 exactly', () => {
    const cases: Array<[number, number]> = [
      [0x3f80, 1],
      [0xc000, -2],
      [0x4049, 3.140625],
      [0x7f80, Infinity],
      [0xff80, -Infinity],
      [0x0001, 2 ** -133], // subnormal
    ];
    const out = halfFile('BF16', cases.map((c) => c[0]).concat([0x7fc0])).float32('x');
    cases.forEach(([bits, want], i) => {
      expect(out[i]).toBe(want);
      expect(bf16ToNumber(bits)).toBe(want);
    });
    expect(Number.isNaN(out[cases.length])).toBe(true);
  });

  it('refuses other dtypes as float32, naming the dtype', () => {
    const f = new SafetensorsFile(build({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16), 'ids.safetensors');
    expect(() => f.float32('ids')).toThrow(/ids\.safetensors: tensor "ids" has dtype I64/);
    expect(f.bytes('ids').length).toBe(16);
  });
});

describe('malformed safetensors files', () => {
  const t = (dtype: string, shape: unknown, offs: unknown) => ({ dtype, shape, data_offsets: offs });

  it('file shorter than 8 bytes', () => {
    expect(parseError(new Uint8Array(5))).toMatch(/file is 5 bytes, too short/);
  });

  it('header length past the end of the file', () => {
    const bytes = build('{}', 0, 1000);
    expect(parseError(bytes)).toMatch(/header length 1000 bytes runs past the end of the file \(10 bytes/);
  });

  it('absurd header length', () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setUint32(4, 1, true); // 2^32
    expect(parseError(bytes)).toMatch(/header length 4294967296 bytes exceeds/);
  });

  it('invalid JSON', () => {
    expect(parseError(build('{"a": [1, 2'))).toMatch(/header is not valid JSON/);
  });

  it('header that is not an object', () => {
    expect(parseError(build('[1, 2]'))).toMatch(/header must be a JSON object, got an array/);
  });

  it('invalid UTF-8', () => {
    const bytes = build('{"a":1}');
    bytes[10] = 0xff;
    expect(parseError(bytes)).toMatch(/not valid UTF-8/);
  });

  it('unknown dtype', () => {
    expect(parseError(build({ w: t('F12', [2], [0, 4]) }, 4))).toMatch(/tensor "w" has unknown dtype "F12"/);
  });

  it('bad shape', () => {
    expect(parseError(build({ w: t('F32', [2, -1], [0, 4]) }, 4))).toMatch(/tensor "w" shape \[2,-1\] must be an array of non-negative integers/);
    expect(parseError(build({ w: t('F32', [1.5], [0, 4]) }, 4))).toMatch(/tensor "w" shape/);
  });

  it('shape / byte count mismatch', () => {
    const msg = parseError(build({ wte: t('F32', [10, 4], [0, 100]) }, 100));
    expect(msg).toBe('bad.safetensors: tensor "wte" data_offsets [0, 100] hold 100 bytes but shape [10, 4] of F32 needs 160');
  });

  it('offsets past the data section', () => {
    expect(parseError(build({ w: t('F32', [6], [0, 24]) }, 16))).toMatch(/tensor "w" data_offsets \[0, 24\] run past the data section \(16 bytes\)/);
  });

  it('begin after end', () => {
    expect(parseError(build({ w: t('F32', [0], [8, 4]) }, 16))).toMatch(/tensor "w" data_offsets \[8, 4\] have begin > end/);
  });

  it('overlapping tensors', () => {
    const msg = parseError(build({ a: t('F32', [4], [0, 16]), b: t('F32', [2], [8, 16]) }, 16));
    expect(msg).toMatch(/tensors "a" \[0, 16\] and "b" \[8, 16\] overlap/);
  });

  it('non-string metadata', () => {
    expect(parseError(build({ __metadata__: { format: 1 } }))).toMatch(/"__metadata__" entry "format" must be a string/);
  });
});

describe('fixture checkpoints', () => {
  const dims = { 'tiny-gpt2-random': { d: 64, v: 1000 }, 'induction-2l': { d: 128, v: 512 } } as const;
  for (const name of GPT2_FIXTURES) {
    it(`parses ${name}/model.safetensors`, () => {
      const f = new SafetensorsFile(fixtureBytes(name, 'model.safetensors'), `${name}/model.safetensors`);
      const { d, v } = dims[name];
      expect(f.names.length).toBe(28);
      expect(f.metadata).toEqual({ format: 'pt' });
      expect(f.info('transformer.wte.weight')).toMatchObject({ dtype: 'F32', shape: [v, d] });
      expect(f.info('transformer.wpe.weight').shape).toEqual([64, d]);
      expect(f.info('transformer.h.1.attn.c_attn.weight').shape).toEqual([d, 3 * d]);
      expect(f.info('transformer.h.0.mlp.c_proj.weight').shape).toEqual([4 * d, d]);
      const wte = f.float32('transformer.wte.weight');
      expect(wte.length).toBe(v * d);
      expect(wte.every(Number.isFinite)).toBe(true);
    });
  }
});
