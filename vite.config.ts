/**
 * The static site and the library bundle, from one config:
 *
 *   vite build              the site: index.html (the gallery) and demos/NAME/index.html, plus
 *                           demos/models/ and demos/article/ copied as they are, into dist/
 *   vite build --mode lib   dist/patchbay.js: ESM, every component defined (src/components/index.ts)
 *   vite                    the dev server; /patchbay.js is served from src/components/index.ts
 *
 * `npm run build` runs both builds (site first: it empties dist/). The article page is not built:
 * it is plain HTML that loads ../../patchbay.js with one script tag, the way an outside author
 * would use the library, so it is copied verbatim. Browser tests load pages from the dev server
 * (tests/browser/forward.html, the demos) or from dist/ (tests/pages/build.test.ts).
 */
import { cpSync, existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const root = dirname(fileURLToPath(import.meta.url));

/** Pages under demos/ that are copied as they are instead of built. */
const VERBATIM = ['article'];

/** index.html and every demos/NAME/index.html that exists: one build input per page. */
function pages(): Record<string, string> {
  const input: Record<string, string> = { main: resolve(root, 'index.html') };
  const demos = join(root, 'demos');
  if (!existsSync(demos)) return input;
  for (const entry of readdirSync(demos, { withFileTypes: true })) {
    const page = join(demos, entry.name, 'index.html');
    if (entry.isDirectory() && existsSync(page) && !VERBATIM.includes(entry.name)) input[`demos/${entry.name}`] = page;
  }
  return input;
}

/** Copies the demo models, the verbatim pages and what they link to into the site. */
function copyStatic(): Plugin {
  let outDir = resolve(root, 'dist');
  return {
    name: 'patchbay-copy-static',
    apply: 'build',
    configResolved(config) {
      outDir = resolve(config.root, config.build.outDir); // tests build elsewhere
    },
    closeBundle() {
      const copy = (rel: string) => {
        const from = join(root, rel);
        if (existsSync(from)) cpSync(from, join(outDir, rel), { recursive: true });
      };
      copy('demos/models');
      copy('demos/snapshots'); // what figures draw without WebGPU (patchbay snapshot)
      copy('demos/favicon.svg');
      for (const page of VERBATIM) copy(`demos/${page}`);
    },
  };
}

/** In the dev server, /patchbay.js is the library entry (in dist/ it is the built bundle). */
function devLibrary(): Plugin {
  return {
    name: 'patchbay-dev-library',
    apply: 'serve',
    configureServer(server) {
      server.middlewares.use((req, _res, next) => {
        if (req.url && /^\/patchbay\.js(\?|$)/.test(req.url)) req.url = '/src/components/index.ts';
        next();
      });
    },
  };
}

export default defineConfig(({ mode }) => {
  const outDir = resolve(root, 'dist');
  if (mode === 'lib') {
    return {
      root,
      publicDir: false,
      // Dependencies that test process.env.NODE_ENV get the production branch.
      define: { 'process.env.NODE_ENV': JSON.stringify('production') },
      build: {
        outDir,
        emptyOutDir: false, // the site build wrote dist/ first
        target: 'es2022',
        copyPublicDir: false,
        lib: {
          entry: resolve(root, 'src/components/index.ts'),
          formats: ['es'],
          fileName: () => 'patchbay.js',
        },
      },
    };
  }
  return {
    root,
    // Relative asset URLs, so the build works from any sub-path (e.g. GitHub Pages).
    base: './',
    // No SPA fallback in `vite` and `vite preview`: a missing file (a toy model's tokenizer.json)
    // must be a 404, as on any static host, not index.html.
    appType: 'mpa',
    plugins: [copyStatic(), devLibrary()],
    server: {
      // Serve only the project (fixtures and demo models are plain files inside it).
      fs: { strict: true, allow: [root] },
    },
    build: {
      outDir,
      emptyOutDir: true,
      // Top-level await in page modules; every WebGPU browser supports ES2022.
      target: 'es2022',
      rolldownOptions: { input: pages() },
    },
  };
});
