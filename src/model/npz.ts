/**
 * NumPy's `.npz` (a zip of `.npy` files, as `np.savez` writes them): Gemma Scope's `params.npz`.
 *
 * Zip: the end-of-central-directory record (or its zip64 form) gives the central directory,
 * whose entries give each member's compressed size, method and local header; the member's data
 * follows its local header (30 bytes + name + extra field). Methods: 0 (stored, `np.savez`) and
 * 8 (deflate, `np.savez_compressed`, inflated with the host's `DecompressionStream`). numpy writes
 * members with zip64 local headers (`force_zip64`), so sizes come from the central directory.
 *
 * npy: "\x93NUMPY", version, a little-endian header length (u16 in v1, u32 in v2 and v3), then a
 * Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2304, 16384), }, then
 * the array's bytes. Float dtypes are read as fp32: f4 as is, f2 widened, f8 rounded.
 */
import { f16ToNumber } from './safetensors.ts';

export class NpzError extends Error {
  override name = 'NpzError';
}

export interface NpyInfo {
  name: string;
  /** numpy's `descr`, e.g. "<f4". */
  descr: string;
  shape: number[];
}

const EOCD = 0x06054b50;
const EOCD64 = 0x06064b50;
const EOCD64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;

interface Member {
  name: string;
  method: number;
  compressed: number;
  size: number;
  localOffset: number;
}

/** A parsed `.npz`: member arrays by name (without the ".npy" suffix). */
export class NpzFile {
  private constructor(
    readonly fileName: string,
    private readonly arrays: Map<string, { info: NpyInfo; data: Uint8Array }>,
  ) {}

  /** Reads and validates every member (inflating deflated ones). */
  static async read(bytes: Uint8Array, fileName = 'npz file'): Promise<NpzFile> {
    const fail = (msg: string): never => {
      throw new NpzError(`${fileName}: ${msg}`);
    };
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const u16 = (o: number) => dv.getUint16(o, true);
    const u32 = (o: number) => dv.getUint32(o, true);
    const u64 = (o: number) => {
      const v = dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 2 ** 32;
      if (!Number.isSafeInteger(v)) fail(`a zip64 size or offset (${v}) is too large`);
      return v;
    };
    if (bytes.length < 22) fail(`${bytes.length} bytes is too short for a zip archive`);
    // The end record is the last 22 bytes plus a comment of up to 65,535 bytes.
    let end = -1;
    for (let o = bytes.length - 22; o >= Math.max(0, bytes.length - 22 - 65535); o--) {
      if (u32(o) === EOCD) {
        end = o;
        break;
      }
    }
    if (end < 0) fail('not a zip archive (no end-of-central-directory record); an .npz is a zip of .npy files');
    let count = u16(end + 10);
    let cdOffset = u32(end + 16);
    if (cdOffset === U32_MAX || count === 0xffff) {
      const loc = end - 20;
      if (loc < 0 || u32(loc) !== EOCD64_LOCATOR) fail('zip64 archive without its end-of-central-directory locator');
      const e64 = u64(loc + 8);
      if (e64 + 56 > bytes.length || u32(e64) !== EOCD64) fail('zip64 end-of-central-directory record is missing or truncated');
      count = u64(e64 + 32);
      cdOffset = u64(e64 + 48);
    }
    const members: Member[] = [];
    let o = cdOffset;
    for (let i = 0; i < count; i++) {
      if (o + 46 > bytes.length || u32(o) !== CENTRAL) fail(`central directory entry ${i} is corrupt`);
      const nameLen = u16(o + 28);
      const extraLen = u16(o + 30);
      const commentLen = u16(o + 32);
      const name = new TextDecoder().decode(bytes.subarray(o + 46, o + 46 + nameLen));
      let compressed = u32(o + 20);
      let size = u32(o + 24);
      let localOffset = u32(o + 42);
      // zip64 extra field (id 1): the 8-byte values of whichever fields above are 0xffffffff, in order.
      for (let x = o + 46 + nameLen; x + 4 <= o + 46 + nameLen + extraLen;) {
        const id = u16(x);
        const len = u16(x + 2);
        if (id === 1) {
          let p = x + 4;
          if (size === U32_MAX) {
            size = u64(p);
            p += 8;
          }
          if (compressed === U32_MAX) {
            compressed = u64(p);
            p += 8;
          }
          if (localOffset === U32_MAX) localOffset = u64(p);
        }
        x += 4 + len;
      }
      members.push({ name, method: u16(o + 10), compressed, size, localOffset });
      o += 46 + nameLen + extraLen + commentLen;
    }
    const arrays = new Map<string, { info: NpyInfo; data: Uint8Array }>();
    for (const m of members) {
      if (!m.name.endsWith('.npy')) continue;
      const lo = m.localOffset;
      if (lo + 30 > bytes.length || u32(lo) !== LOCAL) fail(`member "${m.name}" has no local header at ${lo}`);
      const start = lo + 30 + u16(lo + 26) + u16(lo + 28);
      if (start + m.compressed > bytes.length) fail(`member "${m.name}" runs past the end of the file (truncated download?)`);
      const raw = bytes.subarray(start, start + m.compressed);
      let npy: Uint8Array;
      if (m.method === 0) npy = raw;
      else if (m.method === 8) npy = await inflateRaw(raw, m.size, `${fileName}/${m.name}`);
      else npy = fail(`member "${m.name}" uses zip compression method ${m.method}; only stored (0) and deflate (8) are read`);
      const name = m.name.slice(0, -4);
      arrays.set(name, parseNpy(npy, name, `${fileName}/${m.name}`));
    }
    if (arrays.size === 0) fail('holds no .npy arrays');
    return new NpzFile(fileName, arrays);
  }

  get names(): string[] {
    return [...this.arrays.keys()];
  }

  has(name: string): boolean {
    return this.arrays.has(name);
  }

  info(name: string): NpyInfo {
    const a = this.arrays.get(name);
    if (!a) throw new NpzError(`${this.fileName}: no array "${name}" (it holds ${this.names.join(', ')})`);
    return a.info;
  }

  /** The array as fp32, row-major (C order). */
  float32(name: string): Float32Array {
    const { data } = this.arrays.get(name) ?? { data: null };
    const info = this.info(name);
    const n = info.shape.reduce((a, b) => a * b, 1);
    const little = info.descr[0] !== '>';
    const kind = info.descr.slice(1);
    const dv = new DataView(data!.buffer, data!.byteOffset, data!.byteLength);
    const out = new Float32Array(n);
    if (kind === 'f4') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, little);
    else if (kind === 'f8') for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, little);
    else if (kind === 'f2') for (let i = 0; i < n; i++) out[i] = f16ToNumber(dv.getUint16(2 * i, little));
    else throw new NpzError(`${this.fileName}: array "${name}" has dtype ${info.descr}; only float16, float32 and float64 arrays are read`);
    return out;
  }
}

async function inflateRaw(raw: Uint8Array, size: number, what: string): Promise<Uint8Array> {
  if (typeof DecompressionStream === 'undefined') throw new NpzError(`${what} is deflated and this host has no DecompressionStream`);
  const stream = new Blob([raw as BlobPart]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  const out = new Uint8Array(await new Response(stream).arrayBuffer());
  if (out.length !== size) throw new NpzError(`${what} inflated to ${out.length} bytes, the zip directory says ${size}`);
  return out;
}

/** One `.npy` member: its header, and a view of its data (C order). */
function parseNpy(b: Uint8Array, name: string, what: string): { info: NpyInfo; data: Uint8Array } {
  const fail = (msg: string): never => {
    throw new NpzError(`${what}: ${msg}`);
  };
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (b.length < 10 || magic.some((m, i) => b[i] !== m)) fail('not an .npy array (bad magic)');
  const major = b[6];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const [hlen, h0] = major === 1 ? [dv.getUint16(8, true), 10] : major === 2 || major === 3 ? [dv.getUint32(8, true), 12] : fail(`unknown .npy version ${major}`);
  if (h0 + hlen > b.length) fail('header runs past the end of the array');
  const header = new TextDecoder().decode(b.subarray(h0, h0 + hlen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1] ?? fail(`header has no descr: ${header.trim()}`);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1] ?? fail(`header has no fortran_order: ${header.trim()}`);
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1] ?? fail(`header has no shape: ${header.trim()}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (/^\d+$/.test(s) ? Number(s) : fail(`shape (${shapeText}) is not a tuple of integers`)));
  if (fortran === 'True' && shape.length > 1) fail('is stored in Fortran order; save it C-contiguous (np.ascontiguousarray)');
  const itemSize = Number(/(\d+)$/.exec(descr)?.[1] ?? 0);
  const need = shape.reduce((a, s) => a * s, 1) * itemSize;
  if (h0 + hlen + need > b.length) fail(`holds ${b.length - h0 - hlen} data bytes; shape (${shape.join(', ')}) of ${descr} needs ${need}`);
  return { info: { name, descr, shape }, data: b.subarray(h0 + hlen, h0 + hlen + need) };
}
