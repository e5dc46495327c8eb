// The "pick a model and look inside" page. ../ioi/hub.ts reads ?hub= and must run before the
// components are defined, so that the model's first load already goes to that host. The rest of
// the page is imported dynamically for that reason: a static import of a chunk shared with other
// pages is evaluated before this module's own code, whatever the order of the import lines.
import '../ioi/hub.ts';

await import('./page.ts');
