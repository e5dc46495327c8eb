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
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Dawn warns at startup when XDG_RUNTIME_DIR is unset.
    env: { XDG_RUNTIME_DIR: '/tmp' },
  },
});
