// The IOI demo. hub.ts reads ?hub= and must run before the components are defined, so that the
// model's first load already goes to that host. The components are imported dynamically for
// that reason: a static import of a chunk shared with other pages is evaluated before this
// module's own code, whatever the order of the import lines.
import './hub.ts';

await import('../../src/components/index.ts');
