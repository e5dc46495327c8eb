/**
 * Runs induction-2l's forward pass in the browser's WebGPU and compares the logits with the
 * Hugging Face reference. The Node test (forward.test.ts) serves this page with Vite, opens it in
 * headless Chromium and reads `window.__result`.
 */
import { acquireGpu } from '../../src/gpu/device.ts';
import { loadModel } from '../../src/hooks/load.ts';
import { urlModelSource } from '../../src/model/source.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { maxAbs, maxAbsDiff, tolerance } from '../helpers/compare.ts';
import type { ForwardPageResult } from './result.ts';

const FIXTURE = '/tests/fixtures/induction-2l';

async function fetchOk(url: string): Promise<Response> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${res.statusText}`);
  return res;
}

async function main(): Promise<ForwardPageResult> {
  const gpu = await acquireGpu();
  const model = await loadModel(gpu, urlModelSource(FIXTURE));
  const cases = (await (await fetchOk(`${FIXTURE}/cases.json`)).json()) as { prompts: number[][] };
  const prompts = cases.prompts;

  const t0 = performance.now();
  const result = await model.run(prompts);
  const logits = await result.logits.read(); // (batch, pos, d_vocab)
  const ms = performance.now() - t0;

  // Second run: pipelines compiled and buffers pooled, so this is the steady-state time.
  const t1 = performance.now();
  const again = await model.run(prompts);
  await again.logits.read();
  const msSecondRun = performance.now() - t1;

  const bytes = await (await fetchOk(`${FIXTURE}/activations.safetensors`)).arrayBuffer();
  const ref = new SafetensorsFile(new Uint8Array(bytes), 'activations.safetensors').float32('logits');
  return {
    adapter: gpu.adapterName,
    maxAbsError: maxAbsDiff(logits, ref),
    maxAbsRef: maxAbs(ref),
    tolerance: tolerance(ref),
    ms,
    msSecondRun,
  };
}

function report(result: ForwardPageResult): void {
  window.__result = result;
  document.getElementById('out')!.textContent = JSON.stringify(result, null, 2);
}

main().then(report, (e: unknown) => {
  console.error(e);
  report({ error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
});
