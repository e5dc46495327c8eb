/**
 * What happens to the experiment when the reader switches models on this page:
 *
 * - The toy model (`induction-2l`) has no tokenizer and takes token ids; the Hub models take
 *   text. Switching to the toy model swaps a text prompt for a sequence with a repeat it can
 *   copy; switching back restores the reader's last text prompt.
 * - Head names ("9.6") mean nothing in another model (and may not exist in it), so a switch
 *   resets the heads shown and any ablation.
 *
 * The changes are made when the new model starts loading, while the figures have no model and
 * so compute nothing: they draw once, for the new model.
 */
import { PRESETS, type PbModel } from '../../src/components/index.ts';

/** The article's induction-2l sequence: 11 tokens, then the first 6 again (it predicts 247 next). */
const ID_PROMPT = '0,200,290,288,235,361,417,247,69,18,454,200,290,288,235,361,417';
const isIds = (prompt: string) => /^[\d\s,]+$/.test(prompt) && /\d/.test(prompt);

const el = document.querySelector<PbModel>('pb-model');
if (el) {
  let lastText = el.prompt;
  let status = 'idle';
  let first = true;
  const onChange = () => {
    const s = el.session;
    const starting = s.status === 'loading' && status !== 'loading';
    status = s.status;
    if (!starting) return;
    const st = el.state.state;
    const patch: Parameters<typeof el.state.update>[0] = {};
    if (PRESETS[s.name]?.tokenizer === false) {
      if (!isIds(st.prompt)) {
        if (st.prompt) lastText = st.prompt;
        patch.prompt = ID_PROMPT;
      }
    } else if (isIds(st.prompt)) {
      patch.prompt = lastText;
    }
    if (!first) Object.assign(patch, { heads: [], ablate: [] });
    first = false;
    el.state.update(patch);
  };
  el.session.addEventListener('change', onChange);
  onChange(); // in case the first load started before this module ran
}
