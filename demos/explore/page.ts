// The page's modules once ?hub= has been applied (main.ts): the components, and ./switch.ts,
// which must listen from the model's first load.
import '../../src/components/index.ts';
import './switch.ts';
