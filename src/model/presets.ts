/**
 * Model names a page may use instead of a URL. Local presets live in the site's models folder
 * (`<pb-model models="…">`, relative to the page); Hub presets are fetched from the Hugging Face
 * Hub (`<pb-model hub="…">` replaces the host, for mirrors and for tests that serve files
 * locally).
 */
export interface Preset {
  /** Folder relative to the models base, or a Hub repository. */
  local?: string;
  repo?: string;
  title: string;
  /** False for models without a Hub tokenizer (prompts are token ids): no tokenizer.json is requested. */
  tokenizer?: boolean;
  /** What the reader downloads (weights and tokenizer), as the Hub lists the files. */
  download?: string;
  /** What to do when the Hub refuses the files (a gated original, and where an ungated copy is). */
  access?: string;
}

export const PRESETS: Record<string, Preset> = {
  'induction-2l': { local: 'induction-2l/', title: 'induction-2l: a 2-layer GPT-2 trained to copy repeated segments', tokenizer: false },
  'tiny-gemma3': { local: 'tiny-gemma3-random/', title: 'tiny-gemma3-random: a 6-layer Gemma 3 with random weights (1.1 MB, shipped)', tokenizer: false },
  gpt2: { repo: 'openai-community/gpt2', title: 'GPT-2 small (124M), from the Hugging Face Hub' },
  'pythia-70m': { repo: 'EleutherAI/pythia-70m', title: 'Pythia-70M (GPT-NeoX), from the Hugging Face Hub' },
  'smollm2-135m': { repo: 'HuggingFaceTB/SmolLM2-135M', title: 'SmolLM2-135M (Llama-style, BF16), from the Hugging Face Hub' },
  // google/gemma-3-270m is gated (a licence to accept; anonymous downloads are refused): the preset
  // reads Unsloth's ungated copy of the same BF16 checkpoint. Gemma Scope 2's SAEs were trained on it.
  'gemma-3-270m': {
    repo: 'unsloth/gemma-3-270m',
    title: "Gemma 3 270M (BF16; Unsloth's ungated copy of google/gemma-3-270m), 570 MB download",
    download: '570 MB (model.safetensors 536 MB, tokenizer.json 33 MB)',
    access:
      'The preset reads unsloth/gemma-3-270m, an ungated copy of google/gemma-3-270m. Google\'s own repository is gated: accept the Gemma licence at https://huggingface.co/google/gemma-3-270m and give <pb-model> a Hugging Face access token (its `token` property) with src="https://huggingface.co/google/gemma-3-270m/resolve/main/".',
  },
  'qwen3-0.6b': {
    repo: 'Qwen/Qwen3-0.6B',
    title: 'Qwen3 0.6B (BF16), 1.5 GB download',
    download: '1.5 GB (model.safetensors 1.5 GB, tokenizer.json 11 MB)',
  },
};

export { DEFAULT_HUB } from './hub-source.ts';

/** The folder URL for `src`: a preset name, or a URL (absolute or relative to the page). */
export function resolveModelUrl(src: string, modelsBase: string, hub: string, pageUrl: string): string {
  const p = PRESETS[src];
  if (p?.local) return new URL(p.local, new URL(modelsBase.endsWith('/') ? modelsBase : modelsBase + '/', pageUrl)).toString();
  if (p?.repo) return `${hub.replace(/\/+$/, '')}/${p.repo}/resolve/main/`;
  return new URL(src, pageUrl).toString();
}
