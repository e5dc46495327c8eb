/**
 * The safetensors file format: parse and validate the header, read tensors out of the data
 * section (widening F16 / BF16 to fp32), and write F32 files.
 *
 * Layout of a file:
 *   [0, 8)              u64 little-endian N = header length in bytes
 *   [8, 8 + N)          UTF-8 JSON object: { "<name>": { dtype, shape, data_offsets: [begin, end] },
 *                       ..., "__metadata__"?: { "<key>": "<string>" } }
 *   [8 + N, file end)   data section; each tensor's bytes are data[begin, end), row-major,
 *                       little-endian
 */
import { toBf16Array, toF16Array } from './half.ts';
import { similarNames } from '../util/similar-names.ts';

/** Bytes per element of every byte-sized safetensors dtype. */
export const ST_DTYPE_SIZE = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  C64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type StDType = keyof typeof ST_DTYPE_SIZE;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export interface StTensorInfo {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Byte range [begin, end) relative to the start of the data section, as in the header. */
  begin: number;
  end: number;
}

export interface StHeader {
  tensors: Map<string, StTensorInfo>;
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section in the file (8 + header length). */
  dataOffset: number;
}

/** Headers larger than this are treated as corrupt (real ones are well under 1 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

function isDType(s: unknown): s is StDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ST_DTYPE_SIZE, s);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parse and validate a safetensors header. Throws `SafetensorsError` naming `fileName`. */
export function parseSafetensorsHeader(bytes: Uint8Array, fileName = 'safetensors file'): StHeader {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${fileName}: ${msg}`);
  };
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes, too short for the 8-byte header length`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  // hi * 2^32 + lo; any hi > 0 is already over the sanity limit.
  const headerLen = hi * 0x1_0000_0000 + lo;
  if (headerLen > MAX_HEADER_BYTES) {
    fail(`header length ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  }
  if (8 + headerLen > bytes.length) {
    fail(`header length ${headerLen} bytes runs past the end of the file (${bytes.length} bytes, header would end at ${8 + headerLen})`);
  }
  const dataOffset = 8 + headerLen;
  const dataLen = bytes.length - dataOffset;

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataOffset));
  } catch {
    return fail(`header (${headerLen} bytes) is not valid UTF-8`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message}); it starts ${JSON.stringify(text.slice(0, 40))}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    fail(`header must be a JSON object, got ${Array.isArray(json) ? 'an array' : String(json === null ? 'null' : typeof json)}`);
  }
  const obj = json as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  const meta = obj[METADATA_KEY];
  if (meta !== undefined) {
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
      fail(`"${METADATA_KEY}" must be an object of strings`);
    }
    for (const [k, v] of Object.entries(meta as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`"${METADATA_KEY}" entry "${k}" must be a string, got ${JSON.stringify(v)}`);
      metadata[k] = v as string;
    }
  }

  const tensors = new Map<string, StTensorInfo>();
  for (const [name, raw] of Object.entries(obj)) {
    if (name === METADATA_KEY) continue;
    const where = `tensor "${name}"`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      fail(`${where} entry must be an object with dtype, shape and data_offsets`);
    }
    const e = raw as Record<string, unknown>;
    const dtype = e.dtype;
    if (!isDType(dtype)) {
      fail(`${where} has unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(ST_DTYPE_SIZE).join(', ')})`);
    }
    const dt = dtype as StDType;
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      fail(`${where} shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
    }
    const shp = shape as number[];
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt)) {
      fail(`${where} data_offsets ${JSON.stringify(offs)} must be two non-negative integers [begin, end]`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`${where} data_offsets [${begin}, ${end}] have begin > end`);
    if (end > dataLen) {
      fail(`${where} data_offsets [${begin}, ${end}] run past the data section (${dataLen} bytes)`);
    }
    const numel = shp.reduce((a, b) => a * b, 1);
    const need = numel * ST_DTYPE_SIZE[dt];
    if (!Number.isSafeInteger(need)) fail(`${where} shape ${fmtShape(shp)} is too large`);
    if (end - begin !== need) {
      fail(`${where} data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${fmtShape(shp)} of ${dt} needs ${need}`);
    }
    tensors.set(name, { name, dtype: dt, shape: shp.slice(), begin, end });
  }

  // No two non-empty byte ranges may overlap.
  const ranges = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    const a = ranges[i - 1]!;
    const b = ranges[i]!;
    if (b.begin < a.end) {
      fail(`tensors "${a.name}" [${a.begin}, ${a.end}] and "${b.name}" [${b.begin}, ${b.end}] overlap`);
    }
  }
  return { tensors, metadata, dataOffset };
}

// ---------------------------------------------------------------------------------------------
// Half-precision widening.

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** f16 bit pattern -> f32 bit pattern, exact (subnormals normalized, inf / NaN payload kept). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / NaN
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0; // normal
  if (mant === 0) return sign >>> 0; // +-0
  // Subnormal: value = mant * 2^-24. Shift the leading 1 up to bit 10 and adjust the exponent.
  let e = -14;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | ((e + 127) << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let f16Table: Uint32Array | null = null;

/** All 65536 f16 patterns widened to f32 bits (256 KiB, built on first use). */
function f16ToF32Table(): Uint32Array {
  if (!f16Table) {
    const t = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32Bits(h);
    f16Table = t;
  }
  return f16Table;
}

/** One f16 bit pattern as a number. */
export function f16ToNumber(h: number): number {
  const u = new Uint32Array([f16BitsToF32Bits(h & 0xffff)]);
  return new Float32Array(u.buffer)[0]!;
}

/** One bf16 bit pattern as a number (bf16 is the top half of an f32). */
export function bf16ToNumber(h: number): number {
  const u = new Uint32Array([(h & 0xffff) << 16]);
  return new Float32Array(u.buffer)[0]!;
}

/** raw: n little-endian 16-bit values (any alignment) -> Float32Array[n]. */
function widen16(raw: Uint8Array, kind: 'F16' | 'BF16'): Float32Array {
  const n = raw.length >> 1;
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  if (kind === 'F16') {
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) bits[i] = table[raw[2 * i]! | (raw[2 * i + 1]! << 8)]!;
  } else {
    for (let i = 0; i < n; i++) bits[i] = ((raw[2 * i]! << 16) | (raw[2 * i + 1]! << 24)) >>> 0;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading.

export { similarNames };

/** A parsed safetensors file over its bytes in memory. */
export class SafetensorsFile {
  readonly fileName: string;
  readonly names: string[];
  readonly metadata: Record<string, string>;
  private readonly raw: Uint8Array;
  private readonly tensors: Map<string, StTensorInfo>;
  private readonly dataOffset: number;

  constructor(bytes: Uint8Array, fileName = 'safetensors file') {
    const h = parseSafetensorsHeader(bytes, fileName);
    this.fileName = fileName;
    this.raw = bytes;
    this.tensors = h.tensors;
    this.metadata = h.metadata;
    this.dataOffset = h.dataOffset;
    this.names = [...h.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): StTensorInfo {
    const t = this.tensors.get(name);
    if (!t) {
      const near = similarNames(name, this.names);
      throw new SafetensorsError(
        `${this.fileName}: no tensor "${name}" (${this.names.length} tensors` +
          (near.length ? `; similar: ${near.map((n) => `"${n}"`).join(', ')}` : '') +
          ')',
      );
    }
    return t;
  }

  /** The tensor's raw little-endian bytes; a view into the file, not a copy. */
  bytes(name: string): Uint8Array {
    const t = this.info(name);
    return this.raw.subarray(this.dataOffset + t.begin, this.dataOffset + t.end);
  }

  /**
   * The tensor as fp32, row-major. F32 is returned as a view into the file bytes when they are
   * 4-byte aligned (copy before mutating if the file must stay intact), otherwise copied;
   * F16 / BF16 are widened exactly into a new array. Other dtypes throw.
   */
  float32(name: string): Float32Array {
    const t = this.info(name);
    const raw = this.bytes(name);
    switch (t.dtype) {
      case 'F32': {
        if (LITTLE_ENDIAN && raw.byteOffset % 4 === 0) {
          return new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
        }
        const out = new Float32Array(raw.length / 4);
        const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
        return out;
      }
      case 'F16':
      case 'BF16':
        return widen16(raw, t.dtype);
      default:
        throw new SafetensorsError(
          `${this.fileName}: tensor "${name}" has dtype ${t.dtype}; only F32, F16 and BF16 can be read as float32`,
        );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing.

/** A tensor to write: fp32 values, stored as F32 (default) or rounded to F16 / BF16. */
export interface StWriteTensor {
  name: string;
  shape: number[];
  data: Float32Array;
  dtype?: 'F32' | 'F16' | 'BF16';
}

export type StWriteTensors = StWriteTensor[] | Record<string, Omit<StWriteTensor, 'name'>>;

/**
 * Serialize tensors (in the given order) to a safetensors file. The header is padded with
 * spaces to a multiple of 8 bytes so the data section starts 8-byte aligned.
 */
export function writeSafetensors(tensors: StWriteTensors, metadata?: Record<string, string>): Uint8Array {
  const list = (Array.isArray(tensors) ? tensors : Object.entries(tensors).map(([name, t]) => ({ name, ...t }))).map((t) => {
    const dtype = t.dtype ?? 'F32';
    const bytes =
      dtype === 'F32'
        ? new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)
        : new Uint8Array((dtype === 'F16' ? toF16Array(t.data) : toBf16Array(t.data)).buffer);
    return { ...t, dtype, bytes };
  });

  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header[METADATA_KEY] = { ...metadata };
  let offset = 0;
  for (const t of list) {
    if (t.name === METADATA_KEY) throw new SafetensorsError(`writeSafetensors: "${METADATA_KEY}" is reserved, not a tensor name`);
    if (Object.prototype.hasOwnProperty.call(header, t.name)) {
      throw new SafetensorsError(`writeSafetensors: tensor "${t.name}" appears twice`);
    }
    if (!t.shape.every(isNonNegInt)) {
      throw new SafetensorsError(`writeSafetensors: tensor "${t.name}" shape ${JSON.stringify(t.shape)} must be non-negative integers`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) {
      throw new SafetensorsError(
        `writeSafetensors: tensor "${t.name}" shape ${fmtShape(t.shape)} has ${numel} elements but data has ${t.data.length}`,
      );
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }

  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20); // ' '
    p.set(json);
    json = p;
  }

  const out = new Uint8Array(8 + json.length + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, json.length, true);
  dv.setUint32(4, 0, true);
  out.set(json, 8);
  let at = 8 + json.length;
  if (!LITTLE_ENDIAN) throw new SafetensorsError('writeSafetensors: big-endian hosts are not supported');
  for (const t of list) {
    out.set(t.bytes, at);
    at += t.bytes.byteLength;
  }
  return out;
}
