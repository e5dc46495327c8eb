/** What forward-page.ts leaves in `window.__result` for forward.test.ts to check. */
export type ForwardPageResult =
  | {
      /** The WebGPU adapter the page ran on, e.g. "SwiftShader Device (Subzero)". */
      adapter: string;
      /** max |logits - reference| over the whole (batch, pos, d_vocab) tensor. */
      maxAbsError: number;
      maxAbsRef: number;
      /** 1e-4 × max(1, maxAbsRef): see tests/helpers/compare.ts. */
      tolerance: number;
      /** First run + logits readback, pipelines compiled on the way (ms). */
      ms: number;
      /** The same run again, warm (ms). */
      msSecondRun: number;
    }
  | { error: string };

declare global {
  interface Window {
    /** Set once by forward-page.ts, when the page is done (or failed). */
    __result?: ForwardPageResult;
  }
}
