#!/usr/bin/env node
// The `patchbay` command. An installed package runs the compiled lib/ with plain Node. A source
// checkout (src/ beside bin/, which the package does not ship) runs the TypeScript sources through
// tsx, a devDependency there, so the CLI tests always run what src/ says, never a stale build.
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli/main.ts', import.meta.url);
let main;
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import(sources.href));
} else {
  ({ main } = await import('../lib/src/cli/main.js'));
}
// Exit explicitly: Dawn's threads can keep the process alive after the work is done.
process.exit(await main(process.argv.slice(2)));
