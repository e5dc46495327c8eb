/**
 * The bench's forward section: batch-1 forwards at each length, logits read back, after one
 * untimed warm-up. With the peer, Patchbay and ONNX Runtime alternate rep by rep so that both
 * see the same machine load.
 */
import type { Model } from '../src/hooks/model.ts';
import type { OrtPeer } from './peer/ort.ts';
import { log, maxAbsDiff, prompt, round, summary, timed } from './timing.ts';

export async function forwardOnce(model: Model, ids: number[][]): Promise<Float32Array> {
  const out = await model.run(ids);
  try {
    return await out.logits.read();
  } finally {
    out.release();
  }
}

export async function benchForwards(model: Model, positions: readonly number[], reps: number, peer: OrtPeer | null): Promise<Record<string, unknown>[]> {
  const V = model.config.d_vocab;
  const forwards: Record<string, unknown>[] = [];
  for (const T of positions) {
    const ids = [prompt(T, V)];
    log(`forward ${T} positions: warm-up + ${reps} reps${peer ? ' (and the peer)' : ''}`);
    const pbLogits = await forwardOnce(model, ids); // warm-up: pipelines, plan
    // The peer at this length: a failure (e.g. a buffer over the adapter's binding limit) is
    // recorded in the row and the peer skipped there, not fatal to the run.
    let peerHere = peer;
    let peerWarmMs = 0;
    let peerErr = NaN;
    let peerFailed = '';
    if (peerHere) {
      try {
        const w = await timed(() => peerHere!.logits(ids));
        peerWarmMs = w.ms;
        peerErr = maxAbsDiff(pbLogits, w.value);
      } catch (e) {
        peerFailed = (e as Error).message.split('\n')[0];
        log(`peer failed at ${T} positions: ${peerFailed}`);
        peerHere = null;
      }
    }
    const pb: number[] = [];
    const ort: number[] = [];
    for (let r = 0; r < reps; r++) {
      pb.push((await timed(() => forwardOnce(model, ids))).ms);
      if (peerHere) ort.push((await timed(() => peerHere!.logits(ids))).ms);
    }
    const row: Record<string, unknown> = { pos: T, batch: 1, ...summary(pb) };
    if (peerHere) {
      const p = summary(ort);
      row.peer = { ...p, warmup_ms: round(peerWarmMs, 0), logits_max_abs_diff: peerErr };
      row.peer_over_patchbay = round(p.median_ms / (row.median_ms as number), 2);
    } else if (peerFailed) {
      row.peer = { error: peerFailed };
    }
    forwards.push(row);
  }
  return forwards;
}
