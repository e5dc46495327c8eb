// The induction demo: Patchbay's figures, plus this page's own measurement of every head.
import '../../src/components/index.ts';
import './induction-scores.ts';
import './induction-trainer.ts';
