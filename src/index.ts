/// <reference types="@webgpu/types" preserve="true" />
// The line above keeps WebGPU's global types (GPUDevice, GPUBuffer, ...) in the published typings.
/**
 * Patchbay's public API. Names follow TransformerLens where it has one.
 *
 *   const gpu = await acquireGpu();
 *   const model = await loadModel(gpu, 'https://…/induction-2l');           // or a ModelSource
 *   const { logits, cache } = await model.runWithCache(tokens);
 *   const ablated = await model.runWithHooks(tokens, [zeroHead(1, 3)]);
 *   const patched = await model.runWithHooks(corrupt, [patchFrom('blocks.0.hook_resid_pre', cache, { pos: 4 })]);
 *   const { grads } = await model.runWithGrad(tokens, logitDiffMetric(16, 247, 72));      // d metric / d every hook
 *   const atp = await attributionSweep(model, clean, corrupt, 'z', logitDiffMetric(16, 247, 72));
 *   cache.release();
 */
export { acquireGpu, Gpu, type GpuOptions } from './gpu/device.ts';
export { DeviceLostError, NoWebGPUError, OutOfMemoryError } from './gpu/errors.ts';
export { Tensor } from './gpu/tensor.ts';

export { loadModel, modelFromWeights, type LoadOptions } from './hooks/load.ts';
export { processWeights, PROCESSINGS, type Processing } from './model/processing.ts';
export { Model, type RunOptions, type RunResult, type CacheFilter, type Tokens } from './hooks/model.ts';
export { tlWeightShapes, type WeightTensor, type BlockWeights } from './model/tl-weights.ts';
export { gradPlanBytes, type GradOptions, type GradResult, type NameFilter } from './hooks/grad-run.ts';
export { WeightGradients, toCheckpointLayout, type GradTensor } from './model/weight-grads.ts';
export type { ModelConfig } from './model/config.ts';
export { normalizeConfig, UnsupportedArchitectureError, SUPPORTED_ARCHITECTURES } from './model/normalize-config.ts';
export { hookNames, hookShapes, isHookName, isSiteName, type LayerRange, type HookName, type BlockHookName, type SaeHookName, type SiteName, type SiteNameLike } from './model/hook-points.ts';
export { TokenInputError } from './model/tokens.ts';
export { urlModelSource, blobModelSource, type ModelSource, type ProgressFn } from './model/source.ts';
export { SafetensorsFile, SafetensorsError, writeSafetensors } from './model/safetensors.ts';

export { ActivationCache } from './hooks/activation-cache.ts';
export { zeroAblate, meanAblate, patchFrom, scaleBy, setTo, addVector, hookFn, zeroHead, meanHead, type Intervention, type Selection, type HookFn } from './hooks/interventions.ts';
export {
  accumulatedResid,
  decomposeResid,
  stackHeadResults,
  stackActivation,
  applyLnToStack,
  logitAttrs,
  getActName,
  sumStack,
  logitDiff,
  type Stack,
  type PosSlice,
  type AttrTokens,
} from './hooks/cache-helpers.ts';

export { patchingSweep, PATCH_SITES, type PatchSite, type Grid, type PatchingOptions, type Prompts, type Reduction } from './experiments/patching.ts';
export {
  patching,
  actPatch,
  ACT_PATCH,
  getActPatchResidPre,
  getActPatchResidMid,
  getActPatchAttnOut,
  getActPatchMlpOut,
  getActPatchBlockEvery,
  getActPatchAttnHeadOutAllPos,
  getActPatchAttnHeadQAllPos,
  getActPatchAttnHeadKAllPos,
  getActPatchAttnHeadVAllPos,
  getActPatchAttnHeadPatternAllPos,
  getActPatchAttnHeadOutByPos,
  getActPatchAttnHeadQByPos,
  getActPatchAttnHeadKByPos,
  getActPatchAttnHeadVByPos,
  getActPatchAttnHeadPatternByPos,
  getActPatchAttnHeadPatternDestSrcPos,
  getActPatchAttnHeadAllPosEvery,
  getActPatchAttnHeadByPosEvery,
  type ActPatchName,
  type ActPatchFn,
} from './experiments/act-patch.ts';
export { headAblationSweep, runHeadAblation, headAblationMetric, type AblationMode, type AblationOptions, type HeadAblationOptions, type HeadRef } from './experiments/ablation.ts';
export { runVariants, type Variant, type SweepOptions } from './experiments/sweep.ts';
export {
  attributionSweep,
  attributionSweeps,
  verifyTopK,
  pearson,
  type AttributionGrid,
  type AttributionMethod,
  type AttributionOptions,
  type Verification,
  type VerifiedCell,
} from './experiments/attribution.ts';
export { edgeAttribution, type EdgeScores, type EdgeAttributionOptions } from './experiments/edge-attribution.ts';
export { logitDiffMetric, logProbMetric, probMetric, lossMetric, metricCpu, lossCpu, type Metric, type Metrics } from './model/metric.ts';
export { parseMetricSpec, formatMetricSpec } from './experiments/metric-spec.ts';
export { loadTokenizer, TextTokenizer, type ToTokensOptions } from './model/tokenizer.ts';
export { cachedUrlModelSource } from './model/cached-source.ts';
export { gpt2LikeConfig, type Family } from './model/config.ts';

// Features: SAEs and transcoders on hook points (src/features).
export { loadSae, readSae, saeSource, type SaeLoadOptions } from './features/sae-load.ts';
export { Sae, type HostSae } from './features/sae.ts';
export { type SaeConfig, type SaeFormat, type SaeActivationName, SaeConfigError, SAE_SITES, type SaeSiteName } from './features/sae-config.ts';
export { withErrorTerm, type SaeSplice, type SaeUse } from './hooks/splice.ts';
export { zeroFeature, scaleFeature, clampFeature, patchFeature, steerFeature, saeHook, type FeatureSelection } from './hooks/feature-interventions.ts';
export { featureAblationSweep, featurePatchingSweep, type FeatureGrid, type FeatureSweepOptions } from './experiments/feature-sweeps.ts';
export { featureAttribution, type FeatureAttributionGrid, type FeatureAttributionOptions } from './experiments/feature-attribution.ts';
export { verifyFeatureTopK, type FeatureVerification, type FeatureVerifiedCell } from './experiments/feature-verify.ts';
export { hubSource, parseHubPath, hubFolderUrl, HubAccessError, type HubOptions } from './model/hub-source.ts';
export { NpzFile, NpzError } from './model/npz.ts';

// Training: optimizers as kernels, the loop, toy models of superposition, SAEs (src/train/).
export { TrainClock } from './train/clock.ts';
export { Optimizer, entriesOf, type OptimizerOptions, type AdamWOptions, type SgdOptions, type UpdateEntry } from './train/optimizer.ts';
export { ParamStore, type ParamSpec, type Param } from './train/params.ts';
export { constantLr, linearWarmup, warmupCosine, type LrSchedule } from './train/schedule.ts';
export { Trainer, TrainingRun, type TrainTask, type TrainOptions, type Report, type MetricSource } from './train/trainer.ts';
export { ToyModel, geometricImportance, type ToyModelConfig } from './train/superposition.ts';
export { gram, featureNorms, superposition, featureDimensionality, featuresPerDimension } from './train/superposition-analysis.ts';
export { SaeTraining, coefficientAt, type SaeTrainConfig, type ActivationStore } from './train/sae.ts';
export { collectActivations } from './train/activations.ts';
export { evaluateSae, saeEncode, saeDecode, topContexts, type SaeWeights, type SaeEvaluation } from './train/sae-eval.ts';
export { recallBatch, repeatedBatch, repeatSequences, type TokenBatch } from './train/induction-data.ts';
export { TransformerTraining, lossTargets, type TrainBatch, type TransformerTrainOptions } from './train/transformer.ts';
export { AttnOnlyTraining, attnOnlyUnsupported, type AttnOnlyTrainOptions } from './train/attn-only.ts';
export { checkpointFiles } from './train/save-checkpoint.ts';
export { SeededRandom } from './util/random.ts';
