/**
 * What `model.run` returns: the outputs a run was asked for (logits, loss, or the residual stream
 * where it stopped) and its cache. Asking for an output the run did not compute throws, naming
 * the option that gives it.
 */
import type { Tensor } from '../gpu/tensor.ts';
import type { ActivationCache } from './activation-cache.ts';

export interface RunResult {
  /** [batch, pos, d_vocab]. Absent (throws) for returnType 'loss' and for stopAtLayer. */
  readonly logits: Tensor;
  /** The mean next-token cross-entropy ([]), or per token ([batch, pos - 1]) with lossPerToken. Only with returnType 'loss' or 'both'. */
  readonly loss: Tensor;
  /** With stopAtLayer: the residual stream entering that layer, [batch, pos, d_model]. */
  readonly residual: Tensor;
  readonly cache: ActivationCache;
  /** Releases every output tensor and the cache. */
  release(): void;
}

export interface RunOutputs {
  logits: Tensor | null;
  loss: Tensor | null;
  residual: Tensor | null;
  cache: ActivationCache;
  /** Layer the run stopped before, for the messages. */
  stoppedAt: number | null;
}

export function runResult(o: RunOutputs): RunResult {
  const missing = (what: string): never => {
    if (what === 'logits' && o.stoppedAt !== null) {
      throw new Error(`this run stopped before layer ${o.stoppedAt} (stopAtLayer) and computed no logits; its output is \`residual\``);
    }
    if (what === 'logits') throw new Error("this run returned no logits (returnType: 'loss'); ask for returnType: 'both'");
    if (what === 'loss') throw new Error(o.stoppedAt !== null ? 'a run with stopAtLayer computes no loss' : "this run computed no loss; ask for returnType: 'loss' or 'both'");
    throw new Error('`residual` is the output of a run with stopAtLayer; this run went on to the logits');
  };
  return {
    get logits() {
      return o.logits ?? missing('logits');
    },
    get loss() {
      return o.loss ?? missing('loss');
    },
    get residual() {
      return o.residual ?? missing('residual');
    },
    cache: o.cache,
    release() {
      o.logits?.release();
      o.loss?.release();
      o.residual?.release();
      o.cache.release();
    },
  };
}
