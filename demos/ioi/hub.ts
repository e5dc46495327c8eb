/**
 * `?hub=URL` replaces the Hugging Face Hub host of this page's `<pb-model>` (a mirror, or a test
 * serving files locally). It must run before the components are defined, so that the model's
 * first load already uses it: the pages' main.ts import this module statically and the
 * components dynamically, once it has run.
 */
const hub = new URLSearchParams(location.search).get('hub');
if (hub) {
  let url: URL | null;
  try {
    url = new URL(hub, location.href);
  } catch {
    url = null;
  }
  if (url && (url.protocol === 'https:' || url.protocol === 'http:')) {
    const base = url.href.replace(/\/+$/, '');
    for (const m of document.querySelectorAll('pb-model')) m.setAttribute('hub', base);
  } else {
    console.warn(`ignoring ?hub=${hub}: not an http(s) URL`);
  }
}
