/**
 * `npm run bench -- --peer`: ONNX Runtime Web's WebGPU backend on an ONNX export of the very
 * weights Patchbay runs. The export is first checked against Patchbay on the toy fixture
 * (tests/fixtures/induction-2l), then a session is made on the bench's own weights.
 */
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import type { Gpu } from '../src/gpu/device.ts';
import { loadModel } from '../src/hooks/load.ts';
import { nodeModelSource } from '../src/cli/node-source.ts';
import { OrtPeer, ensureOnnx } from './peer/ort.ts';
import { forwardOnce } from './forwards.ts';
import { log, maxAbsDiff, round } from './timing.ts';

/** The exporter and ORT-web against Patchbay on the toy fixture: max |logit difference| over its first prompt. */
async function fixtureCheck(gpu: Gpu, python: string): Promise<number> {
  const dir = resolve(import.meta.dirname, '../tests/fixtures/induction-2l');
  const cases = JSON.parse(await readFile(join(dir, 'cases.json'), 'utf8')) as { prompts: number[][] };
  const onnx = await ensureOnnx(python, dir, join(tmpdir(), 'patchbay-bench', 'onnx-induction-2l'));
  const model = await loadModel(gpu, await nodeModelSource(dir));
  const peer = await OrtPeer.create(gpu.hostGpu, onnx.path);
  try {
    const ids = [cases.prompts[0]];
    return maxAbsDiff(await forwardOnce(model, ids), await peer.logits(ids));
  } finally {
    model.destroy();
    await peer.release();
  }
}

/** The peer on the Hugging Face folder `hfDir` (exported to ONNX once, cached under the temp folder), and what the result reports about it. */
export async function setUpPeer(gpu: Gpu, python: string, ortVersion: string, hfDir: string): Promise<{ peer: OrtPeer; info: Record<string, unknown> }> {
  log('peer: checking the ONNX export against Patchbay on tests/fixtures/induction-2l');
  const fixtureErr = await fixtureCheck(gpu, python);
  log(`peer: exporting ${hfDir} to ONNX (skipped when cached)`);
  const dirKey = createHash('sha256').update(hfDir).digest('hex').slice(0, 12);
  const onnx = await ensureOnnx(python, hfDir, join(tmpdir(), 'patchbay-bench', `onnx-${dirKey}`));
  const tCreate = performance.now();
  const peer = await OrtPeer.create(gpu.hostGpu, onnx.path);
  const info = {
    engine: `onnxruntime-web ${ortVersion} (WebGPU EP)`,
    adapter: await peer.adapterName(),
    onnx: onnx.path,
    exported_now: onnx.exported,
    export_ms: round(onnx.exportMs, 0),
    session_create_ms: round(performance.now() - tCreate, 0),
    fixture_max_abs_err: fixtureErr,
  };
  return { peer, info };
}
