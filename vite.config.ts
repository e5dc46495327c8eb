/**
 * Dev server and static build: the gallery (index.html) plus one page per demo
 * (demos/NAME/index.html). The browser test also loads tests/browser/forward.html from the dev
 * server, with its weights from tests/fixtures/.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = dirname(fileURLToPath(import.meta.url));

/** index.html and every demos/NAME/index.html that exists: one build input per page. */
function pages(): Record<string, string> {
  const input: Record<string, string> = { main: resolve(root, 'index.html') };
  const demos = join(root, 'demos');
  if (!existsSync(demos)) return input;
  for (const entry of readdirSync(demos, { withFileTypes: true })) {
    const page = join(demos, entry.name, 'index.html');
    if (entry.isDirectory() && existsSync(page)) input[`demos/${entry.name}`] = page;
  }
  return input;
}

export default defineConfig({
  root,
  // Relative asset URLs, so the build works from any sub-path (e.g. GitHub Pages).
  base: './',
  server: {
    // Serve only the project (fixtures and demo models are plain files inside it).
    fs: { strict: true, allow: [root] },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Top-level await in page modules; every WebGPU browser supports ES2022.
    target: 'es2022',
    rolldownOptions: { input: pages() },
  },
});
