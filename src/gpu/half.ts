/**
 * Narrowing fp32 to 16-bit floats, rounding to nearest even: F16 for weights kept in half
 * precision on the GPU, F16 and BF16 for writing test checkpoints. (Widening lives with the
 * safetensors reader.)
 */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of `x` (overflow to +-inf, subnormals kept, NaN stays NaN). */
export function toF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflow to +-0
    // Subnormal: shift the mantissa (with its implicit 1) right, rounding to nearest even.
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++; // may carry into the exponent: still right
  return sign | r;
}

/** bfloat16 bits of `x` (the top half of its fp32 bits, rounded to nearest even). */
export function toBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40; // NaN stays NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function toF16Array(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = toF16Bits(data[i]);
  return out;
}

/** F16's largest finite value; anything that rounds past it becomes infinite. */
export const F16_MAX = 65504;

/**
 * `toF16Array` for weights: refuses (naming `what`, the value and its index) a finite value
 * that F16 cannot hold, which would become +-Infinity and turn every logit into NaN.
 */
export function narrowToF16(data: Float32Array, what: string): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const h = toF16Bits(data[i]);
    if ((h & 0x7fff) === 0x7c00 && Number.isFinite(data[i])) {
      throw new RangeError(`${what}: value ${data[i]} (element ${i}) is beyond float16's range (±${F16_MAX}); keep the weights in float32 (f16: false, or --dtype f32 on the command line)`);
    }
    out[i] = h;
  }
  return out;
}

/** True when every value of `data` is exactly a float16 (NaN counts as one): narrowing loses nothing. */
export function isF16Exact(data: Float32Array): boolean {
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (x !== x) continue; // NaN
    f32[0] = x;
    const b = u32[0];
    const exp = (b >>> 23) & 0xff;
    if (exp === 0xff || (b & 0x7fffffff) === 0) continue; // +-Infinity, +-0
    const e = exp - 127; // unbiased
    // Normal f16: exponents -14 .. 15, 10 mantissa bits (the low 13 of f32's 23 must be zero).
    // Subnormal f16: multiples of 2^-24 down from 2^-14.
    if (e > 15 || e < -24) return false;
    const keep = e >= -14 ? 10 : 10 - (-14 - e); // mantissa bits f16 keeps at this exponent
    if ((b & ((1 << (23 - keep)) - 1)) !== 0) return false;
  }
  return true;
}

export function toBf16Array(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = toBf16Bits(data[i]);
  return out;
}
