/**
 * The bench's peer: ONNX Runtime Web's WebGPU execution provider, on an ONNX export of the same
 * weights, on the same WebGPU adapter as Patchbay, in the same process.
 *
 * ORT-web runs in Node on Dawn (npm `webgpu`) once `navigator.gpu` is Dawn's GPU object and
 * `GPUQueue.writeBuffer` copies views of a SharedArrayBuffer (ORT's wasm heap) into a plain
 * ArrayBuffer first: Dawn's binding rejects shared views with "Invalid argument".
 *
 * The ONNX file comes from `export_gpt2_onnx.py` (Debian python3-torch + python3-onnx), run on a
 * Hugging Face GPT-2 folder; it is cached beside a stamp of the safetensors' hash and the
 * exporter's, and re-exported only when either changes.
 *
 * onnxruntime-web (139 MB) is not in the repository's install: only `--peer` needs it. It is this
 * folder's own dependency (bench/peer/package.json and its lock), installed into
 * bench/peer/node_modules by `npm ci --prefix bench/peer`, which the bench runs the first time
 * `--peer` is given.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The peer cannot run here; the message says what is missing and how to get it. */
export class PeerUnavailableError extends Error {
  override name = 'PeerUnavailableError';
}

const HERE = dirname(fileURLToPath(import.meta.url));
export const EXPORTER = join(HERE, 'export_gpt2_onnx.py');
/** The version bench/peer/package.json pins (read from it, so the two cannot disagree). */
export const ORT_VERSION = (JSON.parse(readFileSync(join(HERE, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies['onnxruntime-web'];

/**
 * The part of onnxruntime-web's API the bench uses, declared here because the package is not
 * installed until `--peer` asks for it (so `tsc` cannot read its own types).
 */
interface OrtTensor {
  getData(): Promise<unknown>;
  dispose(): void;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface Ort {
  env: {
    logLevel?: string;
    wasm: { numThreads?: number; wasmBinary?: ArrayBufferLike | Uint8Array };
    webgpu: { device: Promise<GPUDevice> | GPUDevice | undefined };
  };
  InferenceSession: {
    create(model: Uint8Array, options: { executionProviders: string[]; graphOptimizationLevel: string; logSeverityLevel: number }): Promise<OrtSession>;
  };
  Tensor: new (type: 'int64', data: BigInt64Array, dims: readonly number[]) => OrtTensor;
}

/**
 * A Python that imports torch, onnx and numpy: $PATCHBAY_PYTHON when set, else Debian's /usr/bin/python3
 * (where apt's python3-torch lives, even when another python3 comes first on PATH), or python3.
 */
export function findPython(): string {
  const candidates = process.env.PATCHBAY_PYTHON ? [process.env.PATCHBAY_PYTHON] : ['/usr/bin/python3', 'python3'];
  const problems: string[] = [];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import numpy, torch, onnx'], { encoding: 'utf8' });
    if (r.error) {
      problems.push(`${py}: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`);
      continue;
    }
    if (r.status === 0) return py;
    const missing = /No module named '([^']+)'/.exec(r.stderr)?.[1];
    problems.push(`${py}: ${missing ? `no module "${missing}"` : r.stderr.trim().split('\n').pop()}`);
  }
  throw new PeerUnavailableError(
    `--peer needs PyTorch and ONNX for Python to export the model (${problems.join('; ')}). ` +
      'python3-torch / python3-onnx not installed: apt-get install -y python3-torch python3-onnx python3-numpy ' +
      '(or point PATCHBAY_PYTHON at a Python that has torch and onnx)',
  );
}

/** onnxruntime-web's package.json as Node resolves it from this folder, or null when it is not installed. */
function findOrt(): string | null {
  try {
    const require = createRequire(import.meta.url);
    return join(dirname(dirname(require.resolve('onnxruntime-web'))), 'package.json'); // <root>/dist/ort.*.js
  } catch {
    return null;
  }
}

/**
 * The installed onnxruntime-web's dist folder and version. The first time, installs it into
 * bench/peer/node_modules (`npm ci --prefix bench/peer`, npm's output on stderr); if that fails
 * (offline, no npm), the error gives the command to run.
 */
export function ensureOrt(log: (line: string) => void): { dist: string; version: string } {
  let pkg = findOrt();
  const command = `npm ci --prefix ${relative(process.cwd(), HERE) || '.'}`;
  if (!pkg) {
    log(`peer: installing onnxruntime-web@${ORT_VERSION} (139 MB, only --peer uses it): ${command}`);
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['ci', '--prefix', HERE, '--no-audit', '--no-fund'], { stdio: ['ignore', 2, 2] });
    pkg = r.status === 0 ? findOrt() : null;
    if (!pkg) {
      const why = r.error ? r.error.message : `npm exited with ${r.status}`;
      throw new PeerUnavailableError(`--peer needs the npm package onnxruntime-web@${ORT_VERSION}, and installing it failed (${why}); run: ${command}`);
    }
  }
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  if (version !== ORT_VERSION) log(`warning: onnxruntime-web ${version} installed; the bench pins ${ORT_VERSION} (${command})`);
  return { dist: join(dirname(pkg), 'dist'), version };
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * `outDir`/model.onnx exported from the HF folder `modelDir`; exports only when the stamp beside
 * it does not match the safetensors and the exporter. Returns the path and whether it exported.
 */
export async function ensureOnnx(python: string, modelDir: string, outDir: string): Promise<{ path: string; exported: boolean; exportMs: number }> {
  if (!existsSync(join(modelDir, 'model.safetensors'))) {
    throw new PeerUnavailableError(`${modelDir} has no single model.safetensors; the ONNX exporter does not read sharded checkpoints`);
  }
  mkdirSync(outDir, { recursive: true });
  const onnx = join(outDir, 'model.onnx');
  const stampPath = `${onnx}.stamp.json`;
  const stamp = JSON.stringify({
    safetensors: await sha256File(join(modelDir, 'model.safetensors')),
    config: createHash('sha256')
      .update(readFileSync(join(modelDir, 'config.json')))
      .digest('hex'),
    exporter: createHash('sha256').update(readFileSync(EXPORTER)).digest('hex'),
  });
  if (existsSync(onnx) && existsSync(stampPath) && readFileSync(stampPath, 'utf8') === stamp) return { path: onnx, exported: false, exportMs: 0 };
  const t0 = performance.now();
  const tmp = join(outDir, 'model.tmp.onnx');
  const r = spawnSync(python, [EXPORTER, modelDir, tmp], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (r.status !== 0) {
    throw new Error(`ONNX export failed (${python} ${EXPORTER} ${modelDir}): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-5).join(' | ')}`);
  }
  renameSync(tmp, onnx);
  writeFileSync(stampPath, stamp);
  return { path: onnx, exported: true, exportMs: performance.now() - t0 };
}

let ortModule: Ort | null = null;

/**
 * Loads ORT-web's WebGPU build against `hostGpu` (Dawn's GPU object, the one Patchbay's device
 * came from), once per process. Call `ensureOrt` first.
 */
async function loadOrt(hostGpu: GPU): Promise<Ort> {
  if (ortModule) return ortModule;
  const pkg = findOrt();
  if (!pkg) throw new PeerUnavailableError('onnxruntime-web is not installed (ensureOrt installs it)');
  const dist = join(dirname(pkg), 'dist');
  const g = globalThis as unknown as { navigator?: { gpu?: GPU }; GPUQueue?: { prototype: GPUQueue } };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: { gpu: hostGpu }, configurable: true, writable: true });
  else if (!g.navigator.gpu) Object.defineProperty(g.navigator, 'gpu', { value: hostGpu, configurable: true });
  if (!g.GPUQueue) throw new PeerUnavailableError('WebGPU globals (GPUQueue) are missing; the webgpu package did not install them');
  const proto = g.GPUQueue.prototype as GPUQueue & { __pbShared?: boolean };
  if (!proto.__pbShared) {
    const write = proto.writeBuffer;
    proto.writeBuffer = function (this: GPUQueue, buffer: GPUBuffer, offset: number, data: BufferSource | SharedArrayBuffer, dataOffset?: number, size?: number) {
      let d = data as ArrayBufferView | ArrayBuffer | SharedArrayBuffer;
      if (typeof SharedArrayBuffer !== 'undefined') {
        if (d instanceof SharedArrayBuffer) d = d.slice(0) as unknown as ArrayBuffer;
        else if (ArrayBuffer.isView(d) && d.buffer instanceof SharedArrayBuffer) d = (d as Uint8Array).slice(); // a copy over a plain ArrayBuffer
      }
      return write.call(this, buffer, offset, d as BufferSource, dataOffset, size);
    } as GPUQueue['writeBuffer'];
    proto.__pbShared = true;
  }
  let ort: Ort;
  try {
    const entry: string = 'onnxruntime-web/webgpu'; // typed string, not the literal: tsc does not look for the package
    ort = (await import(entry)) as Ort;
  } catch (e) {
    throw new PeerUnavailableError(`could not load onnxruntime-web/webgpu: ${(e as Error).message}`);
  }
  ort.env.logLevel = 'error';
  ort.env.wasm.numThreads = 1; // no worker threads; the GPU does the work
  ort.env.wasm.wasmBinary = readFileSync(join(dist, 'ort-wasm-simd-threaded.asyncify.wasm'));
  ortModule = ort;
  return ort;
}

/** An ORT-web WebGPU session on one ONNX file: `logits(ids)` runs a forward and reads the logits back. */
export class OrtPeer {
  private constructor(
    private readonly ort: Ort,
    private readonly session: OrtSession,
  ) {}

  static async create(hostGpu: GPU, onnxPath: string): Promise<OrtPeer> {
    const ort = await loadOrt(hostGpu);
    const session = await ort.InferenceSession.create(readFileSync(onnxPath), {
      executionProviders: ['webgpu'],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3, // errors only: not the note that shape ops run on the CPU
    });
    return new OrtPeer(ort, session);
  }

  /** ORT-web's own adapter (it asks navigator.gpu itself). */
  async adapterName(): Promise<string> {
    try {
      const device = (await this.ort.env.webgpu.device) as GPUDevice & { adapterInfo?: GPUAdapterInfo };
      const info = device.adapterInfo;
      return info ? [info.description || info.device || info.vendor, info.architecture].filter(Boolean).join(' / ') : 'unknown';
    } catch {
      return 'unknown';
    }
  }

  /** Logits [batch, pos, vocab] of one forward, on the CPU. */
  async logits(ids: readonly (readonly number[])[]): Promise<Float32Array> {
    const B = ids.length;
    const T = ids[0].length;
    const input = new this.ort.Tensor('int64', BigInt64Array.from(ids.flat().map((x) => BigInt(x))), [B, T]);
    const out = await this.session.run({ input_ids: input });
    const logits = out.logits;
    const data = (await logits.getData()) as Float32Array;
    for (const t of Object.values(out)) t.dispose();
    input.dispose();
    return data;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
