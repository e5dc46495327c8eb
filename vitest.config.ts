/**
 * vitest runs every test in Node. Kernel and model tests use Dawn (npm `webgpu`) directly; the
 * browser test drives headless Chromium itself through playwright-core (tests/browser/), so no
 * vitest browser mode is needed.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    environment: 'node',
    include: ['tests/**/*.test.ts'],
    // Dawn's native addon is not safe to load in worker threads: each test file gets a process.
    pool: 'forks',
    // CI has 2 cores, and lavapipe already spreads one dispatch over all of them.
    maxWorkers: 2,
    // GPU work on lavapipe is slow, and the browser test launches Chromium (~25 s to an adapter).
    // With a cold Mesa shader cache (a fresh CI machine) a test also compiles the kernels it is the
    // first to use: up to ~50 s for the induction recipe's, alone, and twice that with the other
    // worker compiling too (measured on 2 cores); warm, every test takes seconds.
    testTimeout: 240_000,
    hookTimeout: 120_000,
    // Dawn warns at startup when XDG_RUNTIME_DIR is unset.
    env: { XDG_RUNTIME_DIR: '/tmp' },
  },
});
