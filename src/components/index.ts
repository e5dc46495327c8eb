/// <reference types="@webgpu/types" preserve="true" />
// The line above keeps WebGPU's global types (GPUDevice, GPUBuffer, ...) in the published typings.
/**
 * Patchbay's library bundle for pages: importing it registers the custom elements and gives
 * authors the engine's API.
 *
 * ```html
 * <script type="module" src="patchbay.js"></script>
 * <pb-model src="induction-2l" prompt="0,200,290,288" metric="loss:1:3">
 *   <pb-prompt></pb-prompt>
 *   <pb-attention heads="0.2"></pb-attention>
 *   <pb-head-grid></pb-head-grid>
 * </pb-model>
 * ```
 */
export * from '../index.ts';

// Experiments: sweeps and metrics, as the figures use them.
export { patchingSweep, PATCH_SITES, type PatchSite, type Grid, type PatchingOptions } from '../experiments/patching.ts';
export { headAblationSweep, runHeadAblation, headAblationMetric, type AblationOptions, type HeadAblationOptions, type HeadRef } from '../experiments/ablation.ts';
export { logitDiffMetric, logProbMetric, probMetric, lossMetric, metricCpu, type Metric } from '../model/metric.ts';
export { parseMetricSpec, parseMetricSyntax, checkMetricSpec, describeMetricSpec, formatMetricSpec, MetricSpecError, type MetricSpec } from '../experiments/metric-spec.ts';

// Page state shared by the figures.
export { Session, sessionContext, type SessionStatus } from './session.ts';
export { Experiment, experimentContext, readQuery, writeQuery, parseUrlParts, DEFAULT_STATE, type ExperimentState, type UrlPart } from './experiment.ts';
export { PRESETS, DEFAULT_HUB, resolveModelUrl, type Preset } from '../model/presets.ts';
export { PbFigure } from './figure.ts';

// Elements.
export { PbModel, describeLoadError, type ModelLoadedDetail } from './pb-model.ts';
export { describeProgress, formatDuration } from './progress.ts';
export { parseSpec, parseSpecText, SpecError, SPEC_VERSION, type ExperimentSpec } from '../experiments/spec.ts';
export { pythonScript, PYTHON_TARGETS, type PythonTarget } from '../export/python/index.ts';
export { type Snapshot } from '../experiments/snapshot.ts';
export { PbModelPicker } from './pb-model-picker.ts';
export { PbHeatmap, cellColor, scaleGradient, formatValue, type HeatmapScale, type CellDetail } from './heatmap.ts';
export { visibleText as tokenLabel, positionLabel } from './token-text.ts';
export { PbPrompt, type PromptChangeDetail } from './pb-prompt.ts';
export { PbAttention, type HeadsChangeDetail } from './pb-attention.ts';
export { PbHeadGrid, type AblationChangeDetail, type MetricDetail, type EffectsDoneDetail } from './pb-head-grid.ts';
export { PbPatching, type PatchingDoneDetail } from './pb-patching.ts';
export { PbAttribution, type AttributionDoneDetail } from './pb-attribution.ts';
export { PbLogitLens } from './pb-logit-lens.ts';
export { PbTopTokens } from './pb-top-tokens.ts';

// Helpers for authors writing their own figures.
export { visibleText, tokenText, tokenTextStyles } from './token-text.ts';
export { topTokens, probabilityOf, type TokenProb } from './top-k.ts';
export { parseHeadList } from './live-run.ts';

// Features: an SAE on the model, and the figures that read it.
export { PbSae, type SaeLoadedDetail } from './pb-sae.ts';
export { PbFeatures, topFeatures, type FeatureSelectDetail } from './pb-features.ts';
export { PbFeatureActs } from './pb-feature-acts.ts';
export { PbFeatureAttribution, type FeatureAttributionDoneDetail } from './pb-feature-attribution.ts';
export { PbSteer } from './pb-steer.ts';
export { FeatureSession, featureContext } from './feature-session.ts';
export { runWithFeatures, featureActivations, type FeatureExperiment } from '../experiments/feature-run.ts';

// "Copy embed code" names the script this bundle was loaded from (dist/patchbay.js).
import { setLibraryUrl } from './pb-model.ts';
if (/\/patchbay\.js(\?|$)/.test(import.meta.url)) setLibraryUrl(import.meta.url);
