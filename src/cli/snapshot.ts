/**
 * `patchbay snapshot SPEC.json --out SNAPSHOT.json`: computes what the figures of a page show for
 * the spec's experiment (src/experiments/snapshot.ts), so `<pb-model snapshot="SNAPSHOT.json">`
 * can draw them in a browser without WebGPU.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { makeSnapshot } from '../experiments/snapshot.ts';
import { SpecError } from '../experiments/spec.ts';
import { UsageError, parseArgs } from './args.ts';
import { withModel } from './experiment.ts';
import { readSpecFile } from './spec-file.ts';
import { modelLocation } from './spec-model.ts';
import { withSpecSae } from './spec-sae.ts';

export const SNAPSHOT_USAGE = `usage: patchbay snapshot SPEC.json --out SNAPSHOT.json [--heads L.H,...]

Computes what Patchbay's figures show for the spec's experiment (attention patterns, next-token
predictions at every position, the metric and every head's ablation effect, the patching grid of
a patch experiment, the logit lens) and writes it to SNAPSHOT.json. A page points its model at it
(<pb-model snapshot="SNAPSHOT.json">) and readers without WebGPU see the figures drawn from it.

  --out FILE      where to write the snapshot
  --heads L.H,... the attention patterns to keep (default: every head, up to 2M values)
  --help          this text`;

const FLAGS = { out: { required: true }, heads: {}, help: { boolean: true } } as const;

export async function snapshotCommand(argv: readonly string[], print: (line: string) => void): Promise<void> {
  const { positionals, flags } = parseArgs(argv, FLAGS, 'snapshot');
  if (flags.has('help')) {
    print(SNAPSHOT_USAGE);
    return;
  }
  if (positionals.length !== 1) throw new UsageError('snapshot takes one spec file (see patchbay snapshot --help)');
  const path = positionals[0];
  const spec = await readSpecFile(path);
  const heads = flags
    .get('heads')?.[0]
    ?.split(',')
    .map((s) => s.trim());
  if (heads?.some((h) => !/^\d+\.\d+$/.test(h))) throw new UsageError(`--heads ${flags.get('heads')![0]}: expected L.H[,L.H...]`);
  const out = flags.get('out')![0];
  const specDir = dirname(resolve(path));
  await withModel(
    modelLocation(spec.model, specDir),
    (c) => {
      for (const h of heads ?? []) {
        const [l, hh] = h.split('.').map(Number);
        if (l >= c.n_layers || hh >= c.n_heads) throw new UsageError(`--heads: ${h} is not in this model (layers 0 .. ${c.n_layers - 1}, heads 0 .. ${c.n_heads - 1})`);
      }
    },
    async ({ model, gpu }) => {
      const tokenizer = model.tokenizer;
      let snap;
      try {
        snap = await withSpecSae(gpu, spec, specDir, (sae) => makeSnapshot(model, spec, tokenizer, { sae, ...(heads ? { heads } : {}) }));
      } catch (e) {
        if (e instanceof SpecError) throw new UsageError(`${path}: ${e.message}`);
        throw e;
      }
      await mkdir(dirname(resolve(out)), { recursive: true });
      await writeFile(out, `${JSON.stringify(snap)}\n`);
      print(
        `patchbay snapshot: wrote ${out} (${snap.ids.clean.length} tokens, ${snap.attention.heads.length} heads${snap.patching ? `, ${snap.patching.site} grid` : ''}${snap.features ? `, ${snap.features.top.flat().length} feature activations` : ''})`,
      );
    },
    { processing: spec.processing ?? 'none' },
  );
}
