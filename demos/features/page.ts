// The features page once ?hub= has been applied: the components, and the button that swaps the
// shipped toy for Gemma 3 270M with a Gemma Scope 2 SAE from the Hub.
import '../../src/components/index.ts';
import type { PbModel } from '../../src/components/pb-model.ts';
import type { PbSae } from '../../src/components/pb-sae.ts';
import type { PbSteer } from '../../src/components/pb-steer.ts';

const model = document.querySelector<PbModel>('#model')!;
const sae = document.querySelector<PbSae>('#sae')!;
const steer = document.querySelector<PbSteer>('#steer')!;
const hub = model.getAttribute('hub');
if (hub) sae.hub = hub;

/** Gemma Scope 2's SAE on Gemma 3 270M's layer-12 residual stream, 16,384 features. */
export const GEMMA_SCOPE_SAE = 'hf://google/gemma-scope-2-270m-pt/resid_post_all/layer_12_width_16k_l0_small';

document.querySelector('#load-gemma')!.addEventListener('click', () => {
  // The corrupted prompt asks for the country instead: the same tokens but one, for feature attribution.
  model.state.update({ prompt: 'The Eiffel Tower is in the city of', corrupt: 'The Eiffel Tower is in the country of', metric: 'logit-diff:-1:" Paris":" France"' });
  model.src = 'gemma-3-270m';
  sae.src = GEMMA_SCOPE_SAE;
  steer.max = 200; // Gemma's residual stream is far larger than the toy's
});
