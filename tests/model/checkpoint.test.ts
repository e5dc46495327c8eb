import { describe, it, expect } from 'vitest';
import { loadCheckpoint } from '../../src/model/checkpoint.ts';
import { gpt2HostWeights } from '../../src/model/gpt2-weights.ts';
import { normalizeConfig } from '../../src/model/normalize-config.ts';
import { writeSafetensors } from '../../src/model/safetensors.ts';
import { blobModelSource, joinUrl, readBytes, urlModelSource, type ModelSource } from '../../src/model/source.ts';
import { GPT2_FIXTURES, fixtureBytes, fixtureJson, fixtureTensors, weightsDiff } from './fixtures.ts';

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

/** The fixture as a map of file name -> bytes, exactly as on disk. */
function plainFiles(fixture: string): Record<string, Uint8Array> {
  return {
    'config.json': fixtureBytes(fixture, 'config.json'),
    'model.safetensors': fixtureBytes(fixture, 'model.safetensors'),
  };
}

/** The fixture split into two shards (alternating tensors) plus an HF index. */
function shardedFiles(fixture: string): Record<string, Uint8Array> {
  const ts = fixtureTensors(fixture);
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const parts = [ts.filter((_, i) => i % 2 === 0), ts.filter((_, i) => i % 2 === 1)];
  const weight_map: Record<string, string> = {};
  parts.forEach((p, s) => p.forEach((t) => (weight_map[t.name] = names[s]!)));
  const total_size = ts.reduce((a, t) => a + t.data.byteLength, 0);
  return {
    'config.json': fixtureBytes(fixture, 'config.json'),
    [names[0]!]: writeSafetensors(parts[0]!, { format: 'pt' }),
    [names[1]!]: writeSafetensors(parts[1]!, { format: 'pt' }),
    'model.safetensors.index.json': enc({ metadata: { total_size }, weight_map }),
  };
}

/** Hub-style names: no `transformer.` prefix, plus mask buffers and a (tied) lm_head. */
function renamedFiles(fixture: string): Record<string, Uint8Array> {
  const ts = fixtureTensors(fixture).map((t) => ({ ...t, name: t.name.replace(/^transformer\./, '') }));
  const cfg = normalizeConfig(fixtureJson(fixture, 'config.json'));
  for (let l = 0; l < cfg.n_layers; l++) {
    ts.push({ name: `h.${l}.attn.bias`, shape: [1, 1, cfg.n_ctx, cfg.n_ctx], data: new Float32Array(cfg.n_ctx * cfg.n_ctx).fill(1) });
    ts.push({ name: `h.${l}.attn.masked_bias`, shape: [], data: Float32Array.of(-1e4) });
  }
  const wte = ts.find((t) => t.name === 'wte.weight')!;
  ts.push({ name: 'lm_head.weight', shape: wte.shape, data: wte.data.map((x) => -x) });
  return { 'config.json': fixtureBytes(fixture, 'config.json'), 'model.safetensors': writeSafetensors(ts.reverse()) };
}

const asBlobs = (files: Record<string, Uint8Array>) => new Map(Object.entries(files).map(([k, v]) => [k, new Blob([v as Uint8Array<ArrayBuffer>])]));

async function hostWeightsOf(src: ModelSource) {
  const ck = await loadCheckpoint(src);
  return gpt2HostWeights(ck.tensors, ck.config);
}

/** A fake `fetch` serving `files` under `base`, streaming in `chunk`-byte pieces with content-length. */
function fakeFetch(base: string, files: Record<string, Uint8Array>, chunk = 50_000) {
  const requested: string[] = [];
  const f = (async (input: RequestInfo | URL) => {
    const url = String(input);
    requested.push(url);
    const name = url.startsWith(base + '/') ? url.slice(base.length + 1) : '';
    const data = files[name];
    if (!data) return new Response('not found', { status: 404, statusText: 'Not Found' });
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (at >= data.length) return ctl.close();
        ctl.enqueue(data.slice(at, at + chunk));
        at += chunk;
      },
    });
    return new Response(body, { status: 200, headers: { 'content-length': String(data.length) } });
  }) as typeof fetch;
  return { fetch: f, requested };
}

describe('loadCheckpoint from blobs', () => {
  for (const name of GPT2_FIXTURES) {
    it(`${name}: single file, sharded and Hub-renamed give identical HostWeights`, async () => {
      const ck = await loadCheckpoint(blobModelSource(asBlobs(plainFiles(name)), name));
      expect(ck.config).toEqual(normalizeConfig(fixtureJson(name, 'config.json')));
      expect(ck.hfConfig).toEqual(fixtureJson(name, 'config.json'));
      expect(ck.tensors.names.length).toBe(28);
      expect(ck.tensors.info('transformer.wte.weight').dtype).toBe('F32');
      const plain = await gpt2HostWeights(ck.tensors, ck.config);
      expect(plain.layers.length).toBe(2);

      expect(weightsDiff(plain, await hostWeightsOf(blobModelSource(asBlobs(shardedFiles(name)))))).toBeNull();
      expect(weightsDiff(plain, await hostWeightsOf(blobModelSource(renamedFiles(name))))).toBeNull();
    });
  }

  it('reports aggregated, monotonic progress per file', async () => {
    const files = shardedFiles('tiny-gpt2-random');
    const events: Array<{ loaded: number; total: number; file?: string }> = [];
    // Headers first, then each tensor as the mapper reads it; finish() reports the rest as done.
    const ck = await loadCheckpoint(blobModelSource(asBlobs(files)), { onProgress: (p) => events.push(p) });
    expect(events.at(-1)!.loaded).toBeLessThan(10_000); // the config, the index and the shard headers
    await gpt2HostWeights(ck.tensors, ck.config);
    ck.finish();
    const sum = Object.values(files).reduce((a, b) => a + b.length, 0);
    expect(new Set(events.map((e) => e.file))).toEqual(new Set(Object.keys(files)));
    for (let i = 1; i < events.length; i++) expect(events[i]!.loaded).toBeGreaterThanOrEqual(events[i - 1]!.loaded);
    for (const e of events) expect(e.loaded).toBeLessThanOrEqual(e.total);
    expect(events.at(-1)).toMatchObject({ loaded: sum, total: sum });
  });
});

describe('loadCheckpoint errors', () => {
  const cfg = fixtureBytes('tiny-gpt2-random', 'config.json');

  it('no config.json', async () => {
    await expect(loadCheckpoint(blobModelSource({}, 'my folder'))).rejects.toThrow('no config.json in my folder');
  });

  it('no weights names both file names', async () => {
    await expect(loadCheckpoint(blobModelSource({ 'config.json': cfg }, 'dir'))).rejects.toThrow(/no weights in dir: neither model\.safetensors nor model\.safetensors\.index\.json exists/);
  });

  it('unsupported architecture fails before weights are read', async () => {
    const read: string[] = [];
    const src: ModelSource = {
      describe: 'llama',
      async file(name) {
        read.push(name);
        return name === 'config.json' ? enc({ architectures: ['BertForMaskedLM'] }) : null;
      },
    };
    await expect(loadCheckpoint(src)).rejects.toThrow(/BertForMaskedLM.*GPT2LMHeadModel/);
    expect(read).toEqual(['config.json']);
  });

  it('index naming a tensor its shard lacks', async () => {
    const files = shardedFiles('tiny-gpt2-random');
    const index = JSON.parse(new TextDecoder().decode(files['model.safetensors.index.json']));
    index.weight_map['transformer.ghost.weight'] = 'model-00001-of-00002.safetensors';
    files['model.safetensors.index.json'] = enc(index);
    await expect(loadCheckpoint(blobModelSource(files, 'dir'))).rejects.toThrow(/puts tensor "transformer\.ghost\.weight" in model-00001-of-00002\.safetensors, but that shard does not hold it/);
  });

  it('index naming a missing shard', async () => {
    const files = shardedFiles('tiny-gpt2-random');
    delete files['model-00002-of-00002.safetensors'];
    await expect(loadCheckpoint(blobModelSource(files, 'dir'))).rejects.toThrow(/names shard "model-00002-of-00002\.safetensors", but dir has no such file/);
  });

  it('corrupt model.safetensors names the file', async () => {
    await expect(loadCheckpoint(blobModelSource({ 'config.json': cfg, 'model.safetensors': new Uint8Array(4) }, 'dir'))).rejects.toThrow(/^dir\/model\.safetensors: file is 4 bytes/);
  });

  it('bad config JSON', async () => {
    await expect(loadCheckpoint(blobModelSource({ 'config.json': enc('x').subarray(1, 2) }, 'dir'))).rejects.toThrow(/dir\/config\.json is not valid JSON/);
  });
});

describe('sources', () => {
  it('joinUrl puts exactly one slash between base and name', () => {
    expect(joinUrl('https://h/m', 'config.json')).toBe('https://h/m/config.json');
    expect(joinUrl('https://h/m/', 'config.json')).toBe('https://h/m/config.json');
    expect(joinUrl('/models/gpt2//', '/a b.json')).toBe('/models/gpt2/a%20b.json');
  });

  it('urlModelSource streams with monotonic progress and falls back to the index on 404', async () => {
    const base = 'https://models.example/tiny';
    const files = shardedFiles('tiny-gpt2-random');
    const { fetch, requested } = fakeFetch(base, files);
    const events: Array<{ loaded: number; total: number; file?: string }> = [];
    const ck = await loadCheckpoint(urlModelSource(base + '/', fetch), { onProgress: (p) => events.push(p) });

    expect(requested).toEqual([
      `${base}/config.json`,
      `${base}/model.safetensors`,
      `${base}/model.safetensors.index.json`,
      `${base}/model-00001-of-00002.safetensors`,
      `${base}/model-00002-of-00002.safetensors`,
    ]);
    const sum = Object.values(files).reduce((a, b) => a + b.length, 0);
    expect(events.length).toBeGreaterThan(10); // streamed in chunks
    for (let i = 1; i < events.length; i++) expect(events[i]!.loaded).toBeGreaterThanOrEqual(events[i - 1]!.loaded);
    for (const e of events) expect(e.loaded).toBeLessThanOrEqual(e.total);
    expect(events.at(-1)).toMatchObject({ loaded: sum, total: sum });

    const direct = await hostWeightsOf(blobModelSource(plainFiles('tiny-gpt2-random')));
    expect(weightsDiff(direct, await gpt2HostWeights(ck.tensors, ck.config))).toBeNull();
  });

  it('urlModelSource: 404 is null, other statuses throw naming URL and status', async () => {
    const f = (async (u: RequestInfo | URL) =>
      String(u).endsWith('missing') ? new Response('', { status: 404 }) : new Response('', { status: 503, statusText: 'Service Unavailable' })) as typeof fetch;
    const src = urlModelSource('https://h/m', f);
    expect(await src.file('missing')).toBeNull();
    await expect(src.file('config.json')).rejects.toThrow('fetching https://h/m/config.json failed: HTTP 503 Service Unavailable');
  });

  it('readBytes: URL errors, network errors, blobs and buffers', async () => {
    const notFound = (async () => new Response('', { status: 404 })) as typeof fetch;
    await expect(readBytes('https://h/x.bin', { fetch: notFound })).rejects.toThrow('fetching https://h/x.bin failed: HTTP 404');
    const broken = (async () => {
      throw new TypeError('network down');
    }) as typeof fetch;
    await expect(readBytes(new URL('https://h/y.bin'), { fetch: broken })).rejects.toThrow('fetching https://h/y.bin failed: network down');

    const data = Uint8Array.from({ length: 1000 }, (_, i) => i & 255);
    const events: Array<{ loaded: number; total: number; file?: string }> = [];
    const got = await readBytes(new File([data], 'w.bin'), { onProgress: (p) => events.push(p) });
    expect(Array.from(got)).toEqual(Array.from(data));
    expect(events.at(-1)).toEqual({ loaded: 1000, total: 1000, file: 'w.bin' });

    expect(await readBytes(data)).toBe(data);
    expect(Array.from(await readBytes(data.buffer))).toEqual(Array.from(data));

    // No content-length: total is 0 until the end.
    const noLen = (async () => new Response(new ReadableStream({ start: (c) => (c.enqueue(data), c.close()) }))) as typeof fetch;
    const ev2: Array<{ loaded: number; total: number }> = [];
    expect((await readBytes('https://h/z', { fetch: noLen, onProgress: (p) => ev2.push(p) })).length).toBe(1000);
    expect(ev2.slice(0, -1).every((e) => e.total === 0)).toBe(true);
    expect(ev2.at(-1)).toMatchObject({ loaded: 1000, total: 1000 });
  });
});
