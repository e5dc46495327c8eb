/**
 * The Node host's error when Dawn is missing or broken: `webgpu` is an optional peer dependency,
 * so "not installed" must say the one command to run (with the range package.json declares),
 * and a failure inside an installed `webgpu` (its native addon) must not be mistaken for that.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { nodeHostProblem } from '../../src/gpu/device.ts';

const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as {
  peerDependencies: Record<string, string>;
};
const error = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('the Node host without Dawn', () => {
  test('webgpu not installed: names the package and the install command with the declared range', () => {
    const m = nodeHostProblem(error('ERR_MODULE_NOT_FOUND', "Cannot find package 'webgpu' imported from /app/node_modules/patchbay/lib/src/gpu/device.js"));
    expect(m).toContain(`npm install webgpu@${pkg.peerDependencies.webgpu}`);
    expect(m).toContain('optional peer dependency');
  });

  test("webgpu installed but its native addon fails: says so, with the addon's own message", () => {
    const inner = "Cannot find module '/app/node_modules/webgpu/dist/linux-x64/dawn.node'";
    const m = nodeHostProblem(error('MODULE_NOT_FOUND', inner));
    expect(m).toContain('is installed but did not load');
    expect(m).toContain(inner);
    expect(m).not.toContain('npm install');
  });
});
