#!/usr/bin/env node
// The `patchbay` command. Patchbay ships TypeScript sources (no build step), so this launcher
// registers tsx's loader and then runs src/cli/main.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
// Exit explicitly: Dawn's threads can keep the process alive after the work is done.
process.exit(await main(process.argv.slice(2)));
