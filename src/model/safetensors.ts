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
import { toBf16Array, toF16Array } from '../gpu/half.ts';
import { similarNames } from '../util/similar-names.ts';
import { USIZE_MAX, asUsize, describeNode, parseStrictJson, type JsonNode } from './strict-json.ts';
import type { RandomAccessFile } from './source.ts';

/**
 * Bits per element of every safetensors dtype the reference library knows (sub-byte floats
 * included: a tensor's bits must fill whole bytes). Patchbay reads F32, F16 and BF16 as floats;
 * the others parse, and reading them as floats is refused by name.
 */
export const ST_DTYPE_BITS = {
  F64: 64,
  F32: 32,
  F16: 16,
  BF16: 16,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  F6_E2M3: 6,
  F6_E3M2: 6,
  F4: 4,
  C64: 64,
  I64: 64,
  I32: 32,
  I16: 16,
  I8: 8,
  U64: 64,
  U32: 32,
  U16: 16,
  U8: 8,
  BOOL: 8,
} as const;

export type StDType = keyof typeof ST_DTYPE_BITS;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export interface StTensorInfo {
  name: string;
  dtype: StDType;
  /** Dimensions (a zero-sized tensor may list dimensions past 2^53, rounded here). */
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

/** Headers larger than this are refused, as the reference library does (real ones are well under 1 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

/** Where a tensor entry's fields are, in the order a JSON array form lists them. */
const TENSOR_FIELDS = ['dtype', 'shape', 'data_offsets'] as const;

function isDType(s: unknown): s is StDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ST_DTYPE_BITS, s);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * The header length from a file's first 8 bytes, checked against the file's size. `first` may
 * be the whole file or just its start.
 */
export function safetensorsHeaderLength(first: Uint8Array, fileSize: number, fileName = 'safetensors file'): number {
  if (fileSize < 8 || first.length < 8) {
    throw new SafetensorsError(`${fileName}: file is ${fileSize} bytes, too short for the 8-byte header length`);
  }
  const dv = new DataView(first.buffer, first.byteOffset, 8);
  // hi * 2^32 + lo; any hi > 0 is already over the limit.
  const headerLen = dv.getUint32(4, true) * 0x1_0000_0000 + dv.getUint32(0, true);
  if (headerLen > MAX_HEADER_BYTES) {
    throw new SafetensorsError(`${fileName}: header length ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not a safetensors file)`);
  }
  if (8 + headerLen > fileSize) {
    throw new SafetensorsError(`${fileName}: header length ${headerLen} bytes runs past the end of the file (${fileSize} bytes, header would end at ${8 + headerLen})`);
  }
  return headerLen;
}

/**
 * Parses and validates the JSON header (its bytes, `dataLen` = bytes after it in the file) with
 * the reference library's rules: strict JSON (no BOM, no `16.0` where an integer belongs),
 * known dtypes, tensors that tile the data section exactly (no gaps, overlaps or trailing
 * bytes), sizes computed without overflow; `"__metadata__": null` is no metadata, a repeated
 * tensor name keeps its last entry, a repeated `__metadata__` or field is refused.
 */
export function parseSafetensorsHeaderJson(headerBytes: Uint8Array, dataLen: number, fileName = 'safetensors file'): Omit<StHeader, 'dataOffset'> {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${fileName}: ${msg}`);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail(`header (${headerBytes.length} bytes) is not valid UTF-8`);
  }
  let root: JsonNode;
  try {
    root = parseStrictJson(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message}); it starts ${JSON.stringify(text.slice(0, 40))}`);
  }
  if (root.kind !== 'object') return fail(`header must be a JSON object, got ${describeNode(root)}`);

  const metadata: Record<string, string> = {};
  let metadataSeen = false;
  const tensors = new Map<string, StTensorInfo & { numel: bigint; bits: number }>();
  for (const [name, node] of root.entries) {
    if (name === METADATA_KEY) {
      if (metadataSeen) fail(`"${METADATA_KEY}" appears twice`);
      metadataSeen = true;
      if (node.kind === 'null') continue;
      if (node.kind !== 'object') fail(`"${METADATA_KEY}" must be an object of strings, got ${describeNode(node)}`);
      for (const [k, v] of (node as Extract<JsonNode, { kind: 'object' }>).entries) {
        if (v.kind !== 'string') fail(`"${METADATA_KEY}" entry "${k}" must be a string, got ${describeNode(v)}`);
        metadata[k] = (v as Extract<JsonNode, { kind: 'string' }>).value;
      }
      continue;
    }
    tensors.delete(name); // a repeated name keeps its last entry, in its new place
    tensors.set(name, tensorEntry(name, node, fail));
  }

  // The tensors, in offset order, must tile [0, dataLen) exactly.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: StTensorInfo | null = null;
  for (const t of sorted) {
    const where = `tensor "${t.name}"`;
    if (t.begin > t.end) fail(`${where} data_offsets [${t.begin}, ${t.end}] have begin > end`);
    if (t.begin < at) fail(`tensors "${prev!.name}" [${prev!.begin}, ${prev!.end}] and "${t.name}" [${t.begin}, ${t.end}] overlap`);
    if (t.begin > at) {
      fail(`${where} data_offsets [${t.begin}, ${t.end}] leave a gap: the data before it ends at byte ${at} (tensors must cover the data section without gaps)`);
    }
    if (t.end > dataLen) fail(`${where} data_offsets [${t.begin}, ${t.end}] run past the data section (${dataLen} bytes)`);
    const nbits = t.numel * BigInt(t.bits);
    if (nbits > USIZE_MAX) fail(`${where} shape ${fmtShape(t.shape)} is too large (its size overflows 64 bits)`);
    if (nbits % 8n !== 0n) fail(`${where} shape ${fmtShape(t.shape)} of ${t.dtype} does not fill whole bytes`);
    const need = nbits / 8n;
    if (BigInt(t.end - t.begin) !== need) {
      fail(`${where} data_offsets [${t.begin}, ${t.end}] hold ${t.end - t.begin} bytes but shape ${fmtShape(t.shape)} of ${t.dtype} needs ${need}`);
    }
    at = t.end;
    prev = t;
  }
  if (at !== dataLen) {
    fail(`the data section has ${dataLen - at} bytes after the last tensor (it ends at byte ${at} of ${dataLen}): truncated header or trailing bytes`);
  }
  const out = new Map<string, StTensorInfo>();
  for (const [name, t] of tensors) out.set(name, { name, dtype: t.dtype, shape: t.shape, begin: t.begin, end: t.end });
  return { tensors: out, metadata };
}

/** One tensor's header entry: an object with dtype, shape and data_offsets (other keys ignored), or the array [dtype, shape, data_offsets]. */
function tensorEntry(name: string, node: JsonNode, fail: (msg: string) => never): StTensorInfo & { numel: bigint; bits: number } {
  const where = `tensor "${name}"`;
  const fields = new Map<string, JsonNode>();
  if (node.kind === 'object') {
    for (const [k, v] of node.entries) {
      if (!(TENSOR_FIELDS as readonly string[]).includes(k)) continue;
      if (fields.has(k)) fail(`${where} has "${k}" twice`);
      fields.set(k, v);
    }
  } else if (node.kind === 'array' && node.items.length === 3) {
    TENSOR_FIELDS.forEach((k, i) => fields.set(k, node.items[i]!));
  } else {
    fail(`${where} entry must be an object with dtype, shape and data_offsets, got ${describeNode(node)}`);
  }
  for (const k of TENSOR_FIELDS) if (!fields.has(k)) fail(`${where} has no "${k}"`);

  // dtype: a name, or (as serde reads an enum) an object {"F32": null}.
  let dtypeNode = fields.get('dtype')!;
  if (dtypeNode.kind === 'object' && dtypeNode.entries.length === 1 && dtypeNode.entries[0]![1].kind === 'null') {
    dtypeNode = { kind: 'string', value: dtypeNode.entries[0]![0], at: dtypeNode.at };
  }
  const dtype = dtypeNode.kind === 'string' ? dtypeNode.value : undefined;
  if (!isDType(dtype)) fail(`${where} has unknown dtype ${dtypeNode.kind === 'string' ? JSON.stringify(dtype) : describeNode(dtypeNode)} (known: ${Object.keys(ST_DTYPE_BITS).join(', ')})`);

  const shapeNode = fields.get('shape')!;
  const dims = shapeNode.kind === 'array' ? shapeNode.items.map(asUsize) : null;
  if (!dims || dims.some((d) => d === null)) {
    fail(`${where} shape ${jsonText(shapeNode)} must be an array of non-negative integers`);
  }
  // The element count, multiplied in order with an overflow check, as the reference does.
  let numel = 1n;
  for (const d of dims!) {
    numel *= d!;
    if (numel > USIZE_MAX) fail(`${where} shape ${jsonText(shapeNode)} is too large (its size overflows 64 bits)`);
  }

  const offsNode = fields.get('data_offsets')!;
  const offs = offsNode.kind === 'array' && offsNode.items.length === 2 ? offsNode.items.map(asUsize) : null;
  if (!offs || offs.some((o) => o === null)) {
    fail(`${where} data_offsets ${jsonText(offsNode)} must be two non-negative integers [begin, end]`);
  }
  const [begin, end] = offs!.map((o) => Number(o)) as [number, number];
  return { name, dtype: dtype as StDType, shape: dims!.map((d) => Number(d)), begin, end, numel, bits: ST_DTYPE_BITS[dtype as StDType] };
}

/** A JSON node written back compactly, numbers as written (for messages). */
function jsonText(n: JsonNode): string {
  switch (n.kind) {
    case 'array':
      return `[${n.items.map(jsonText).join(',')}]`;
    case 'object':
      return `{${n.entries.map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`).join(',')}}`;
    case 'number':
      return n.text;
    case 'string':
      return JSON.stringify(n.value);
    case 'bool':
      return String(n.value);
    case 'null':
      return 'null';
  }
}

/** Parse and validate a whole safetensors file's header. Throws `SafetensorsError` naming `fileName`. */
export function parseSafetensorsHeader(bytes: Uint8Array, fileName = 'safetensors file'): StHeader {
  const headerLen = safetensorsHeaderLength(bytes, bytes.length, fileName);
  const dataOffset = 8 + headerLen;
  const h = parseSafetensorsHeaderJson(bytes.subarray(8, dataOffset), bytes.length - dataOffset, fileName);
  return { ...h, dataOffset };
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

/** A tensor's bytes as fp32: F32 as a view when 4-byte aligned (else copied), F16 / BF16 widened exactly. */
function bytesToFloat32(raw: Uint8Array, t: StTensorInfo, fileName: string): Float32Array {
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
      throw new SafetensorsError(`${fileName}: tensor "${t.name}" has dtype ${t.dtype}; only F32, F16 and BF16 can be read as float32`);
  }
}

/** The header's tensors by name, with a "similar names" error for a missing one. */
abstract class TensorIndex {
  readonly names: string[];

  constructor(
    readonly fileName: string,
    protected readonly tensors: Map<string, StTensorInfo>,
    readonly metadata: Record<string, string>,
  ) {
    this.names = [...tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): StTensorInfo {
    const t = this.tensors.get(name);
    if (!t) {
      const near = similarNames(name, this.names);
      throw new SafetensorsError(`${this.fileName}: no tensor "${name}" (${this.names.length} tensors` + (near.length ? `; similar: ${near.map((n) => `"${n}"`).join(', ')}` : '') + ')');
    }
    return t;
  }
}

/** A parsed safetensors file over its bytes in memory. */
export class SafetensorsFile extends TensorIndex {
  private readonly raw: Uint8Array;
  private readonly dataOffset: number;

  constructor(bytes: Uint8Array, fileName = 'safetensors file') {
    const h = parseSafetensorsHeader(bytes, fileName);
    super(fileName, h.tensors, h.metadata);
    this.raw = bytes;
    this.dataOffset = h.dataOffset;
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
    return bytesToFloat32(this.bytes(name), this.info(name), this.fileName);
  }

  /** `float32`, as the header-first reader's asynchronous form (both serve as a tensor lookup). */
  async read(name: string): Promise<Float32Array> {
    return this.float32(name);
  }
}

/**
 * A safetensors file read header first: `open` reads the 8-byte length and the header, and
 * validates them against the file's size; each tensor is then read by its own byte range when
 * asked for. Host memory holds one tensor at a time, whatever the file's size, and a file of the
 * wrong model is refused after reading only its header.
 */
export class SafetensorsReader extends TensorIndex {
  private constructor(
    fileName: string,
    h: StHeader,
    private readonly file: RandomAccessFile,
  ) {
    super(fileName, h.tensors, h.metadata);
    this.dataOffset = h.dataOffset;
  }

  private readonly dataOffset: number;

  static async open(file: RandomAccessFile, fileName = 'safetensors file'): Promise<SafetensorsReader> {
    const first = await file.read(0, Math.min(8, file.size));
    const headerLen = safetensorsHeaderLength(first, file.size, fileName);
    const headerBytes = await file.read(8, headerLen);
    const h = parseSafetensorsHeaderJson(headerBytes, file.size - 8 - headerLen, fileName);
    return new SafetensorsReader(fileName, { ...h, dataOffset: 8 + headerLen }, file);
  }

  /** The tensor's raw little-endian bytes, read from the file. */
  async bytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const b = await this.file.read(this.dataOffset + t.begin, t.end - t.begin);
    if (b.length !== t.end - t.begin) {
      throw new SafetensorsError(`${this.fileName}: reading tensor "${name}" gave ${b.length} of its ${t.end - t.begin} bytes (the file changed or was truncated)`);
    }
    return b;
  }

  /** The tensor as fp32 (F16 / BF16 widened exactly); other dtypes throw. */
  async read(name: string): Promise<Float32Array> {
    return bytesToFloat32(await this.bytes(name), this.info(name), this.fileName);
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
    const bytes = dtype === 'F32' ? new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) : new Uint8Array((dtype === 'F16' ? toF16Array(t.data) : toBf16Array(t.data)).buffer);
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
      throw new SafetensorsError(`writeSafetensors: tensor "${t.name}" shape ${fmtShape(t.shape)} has ${numel} elements but data has ${t.data.length}`);
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
