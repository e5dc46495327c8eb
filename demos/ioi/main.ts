// The IOI demo. hub.ts reads ?hub= and must run before the components are defined.
import './hub.ts';
import '../../src/components/index.ts';
