// The "pick a model and look inside" page. ../ioi/hub.ts reads ?hub= and must run before the
// components are defined; ./switch.ts keeps the prompt and heads sensible across models.
import '../ioi/hub.ts';
import '../../src/components/index.ts';
import './switch.ts';
