/**
 * Experiment specs as Python scripts (`patchbay export SPEC --to TARGET`, and the figures' "Python"
 * button): transformers + PyTorch forward hooks (run by the tests against Patchbay), nnsight
 * (local, or remote=True on NDIF) and TransformerLens (syntax-checked; their API use follows those
 * libraries' documentation).
 */
import type { ExperimentSpec } from '../../experiments/spec.ts';
import { type PythonExportOptions, type PythonTarget } from './common.ts';
import { nnsightScript } from './nnsight.ts';
import { transformerLensScript } from './transformer-lens.ts';
import { transformersScript } from './transformers.ts';

export { PYTHON_TARGETS, type PythonTarget, type PythonExportOptions } from './common.ts';

export function pythonScript(spec: ExperimentSpec, target: PythonTarget, options: PythonExportOptions = {}): string {
  switch (target) {
    case 'transformers':
      return transformersScript(spec, options);
    case 'nnsight':
      return nnsightScript(spec, options);
    case 'transformer-lens':
      return transformerLensScript(spec, options);
  }
}
