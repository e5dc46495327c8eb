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
}

export const PRESETS: Record<string, Preset> = {
  'induction-2l': { local: 'induction-2l/', title: 'induction-2l: a 2-layer GPT-2 trained to copy repeated segments', tokenizer: false },
  gpt2: { repo: 'openai-community/gpt2', title: 'GPT-2 small (124M), from the Hugging Face Hub' },
  'pythia-70m': { repo: 'EleutherAI/pythia-70m', title: 'Pythia-70M (GPT-NeoX), from the Hugging Face Hub' },
  'smollm2-135m': { repo: 'HuggingFaceTB/SmolLM2-135M', title: 'SmolLM2-135M (Llama-style, BF16), from the Hugging Face Hub' },
};

export const DEFAULT_HUB = 'https://huggingface.co';

/** The folder URL for `src`: a preset name, or a URL (absolute or relative to the page). */
export function resolveModelUrl(src: string, modelsBase: string, hub: string, pageUrl: string): string {
  const p = PRESETS[src];
  if (p?.local) return new URL(p.local, new URL(modelsBase.endsWith('/') ? modelsBase : modelsBase + '/', pageUrl)).toString();
  if (p?.repo) return `${hub.replace(/\/+$/, '')}/${p.repo}/resolve/main/`;
  return new URL(src, pageUrl).toString();
}
