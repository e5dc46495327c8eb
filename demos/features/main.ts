// The features page. ../ioi/hub.ts reads ?hub= and must run before the components exist (see
// ../explore/main.ts); ?hub= also points this page's SAE at the same host.
import '../ioi/hub.ts';

await import('./page.ts');
