/**
 * A URL model folder cannot be made to fetch elsewhere: a sharded index naming "../x", an
 * absolute path, a URL or another origin is refused before anything outside the folder is
 * requested (local folders already refused them). And messages about a URL folder given with
 * a trailing slash read "<base>/<file>", not "<base>//<file>".
 */
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { urlModelSource, writeSafetensors } from '../../src/index.ts';
import { fixtureBytes, fixtureTensors } from './fixtures.ts';

const BASE = 'https://models.example/org/tiny';
const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

/** tiny-gpt2-random with one shard, named `shard` by the index; the shard is served at every path. */
function serve(shard: string) {
  const ts = fixtureTensors('tiny-gpt2-random');
  const weights = writeSafetensors(ts);
  const index = enc({ weight_map: Object.fromEntries(ts.map((t) => [t.name, shard])) });
  const requested: string[] = [];
  const fetchFn = (async (input: RequestInfo | URL) => {
    const url = new URL(String(input)).href; // as a browser resolves it: "a/../b" is "b"
    requested.push(url);
    const name = url.slice(url.lastIndexOf('/') + 1);
    const body =
      name === 'config.json'
        ? fixtureBytes('tiny-gpt2-random', 'config.json')
        : name === 'model.safetensors.index.json'
          ? index
          : name.endsWith('.safetensors') && name !== 'model.safetensors'
            ? weights
            : null;
    return body ? new Response(body as Uint8Array<ArrayBuffer>, { status: 200 }) : new Response('', { status: 404 });
  }) as typeof fetch;
  return { fetch: fetchFn, requested };
}

describe('URL model folders', () => {
  it.each([
    '../other/model-00001.safetensors',
    'sub/../../model-00001.safetensors',
    '/elsewhere/model-00001.safetensors',
    'https://evil.example/model-00001.safetensors',
    '//evil.example/model-00001.safetensors',
    'sub\\..\\..\\model-00001.safetensors',
    '%2e%2e/model-00001.safetensors',
  ])('refuses the shard name %j without requesting anything outside the folder', async (shard) => {
    const { fetch, requested } = serve(shard);
    await expect(loadCheckpoint(urlModelSource(BASE, fetch))).rejects.toThrow(/is not a file name inside the model's folder/);
    for (const url of requested) expect(url.startsWith(`${BASE}/`), url).toBe(true);
  });

  it('still loads shards named plainly or in a subfolder', async () => {
    for (const shard of ['model-00001-of-00001.safetensors', 'weights/model-00001-of-00001.safetensors']) {
      const { fetch } = serve(shard);
      const ck = await loadCheckpoint(urlModelSource(BASE, fetch));
      expect(ck.tensors.names.length).toBe(28);
    }
  });

  it('a folder URL with a trailing slash gives messages without a doubled slash', async () => {
    const fetchFn = (async (input: RequestInfo | URL) =>
      String(input).endsWith('config.json') ? new Response(fixtureBytes('tiny-gpt2-random', 'config.json') as Uint8Array<ArrayBuffer>) : new Response('', { status: 404 })) as typeof fetch;
    const source = urlModelSource(`${BASE}//`, fetchFn);
    expect(source.describe).toBe(BASE);
    const err = await loadCheckpoint(source).catch((e: Error) => e);
    expect(String(err)).toContain(`no weights in ${BASE}: neither model.safetensors nor model.safetensors.index.json exists`);
    expect(String(err).replace('https://', '')).not.toContain('//');
  });
});
