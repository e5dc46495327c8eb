/**
 * Load a Hugging Face checkpoint folder from a `ModelSource`: `config.json`, then either one
 * `model.safetensors` or the shards named by `model.safetensors.index.json`. Returns the
 * normalized config and one name -> tensor lookup across all shards. Nothing is returned until
 * every file has been read and validated.
 */
import type { ModelConfig } from './config.ts';
import { normalizeConfig } from './normalize-config.ts';
import { SafetensorsFile, similarNames, type StTensorInfo } from './safetensors.ts';
import type { ModelSource, ProgressFn } from './source.ts';

export const CONFIG_FILE = 'config.json';
export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Tensors by name, wherever they are stored. `float32` widens F16 / BF16. */
export interface TensorLookup {
  names: string[];
  has(name: string): boolean;
  info(name: string): StTensorInfo;
  float32(name: string): Float32Array;
}

export interface Checkpoint {
  config: ModelConfig;
  /** The parsed `config.json`, untouched. */
  hfConfig: unknown;
  tensors: TensorLookup;
}

/** One lookup over several files; `owner` maps each tensor name to the file holding it. */
function shardedLookup(owner: Map<string, SafetensorsFile>, describe: string): TensorLookup {
  const names = [...owner.keys()];
  const fileOf = (name: string): SafetensorsFile => {
    const f = owner.get(name);
    if (!f) {
      const near = similarNames(name, names);
      throw new CheckpointError(
        `${describe}: no tensor "${name}" (${names.length} tensors` +
          (near.length ? `; similar: ${near.map((n) => `"${n}"`).join(', ')}` : '') +
          ')',
      );
    }
    return f;
  };
  return {
    names,
    has: (name) => owner.has(name),
    info: (name) => fileOf(name).info(name),
    float32: (name) => fileOf(name).float32(name),
  };
}

/** Sums progress over several files read one after another. */
class ProgressAggregate {
  private doneBytes = 0; // bytes of files already finished
  private doneTotal = 0;
  constructor(private readonly sink: ProgressFn | undefined) {}

  forFile(): ProgressFn | undefined {
    const sink = this.sink;
    if (!sink) return undefined;
    return ({ loaded, total, file }) => {
      const t = Math.max(total, loaded);
      sink({ loaded: this.doneBytes + loaded, total: this.doneTotal + t, ...(file !== undefined ? { file } : {}) });
    };
  }

  finish(bytes: number): void {
    this.doneBytes += bytes;
    this.doneTotal += bytes;
  }
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CheckpointError(`${what} is not valid UTF-8`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** `weight_map` of a sharded index: tensor name -> shard file name. */
function readWeightMap(index: unknown, what: string): Map<string, string> {
  const wm = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(`${what} has no "weight_map" object`);
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.length === 0) {
      throw new CheckpointError(`${what}: weight_map["${name}"] must be a shard file name, got ${JSON.stringify(shard)}`);
    }
    out.set(name, shard);
  }
  if (out.size === 0) throw new CheckpointError(`${what}: weight_map is empty`);
  return out;
}

export async function loadCheckpoint(source: ModelSource, opts: { onProgress?: ProgressFn } = {}): Promise<Checkpoint> {
  const where = source.describe;
  const progress = new ProgressAggregate(opts.onProgress);
  const read = async (name: string): Promise<Uint8Array | null> => {
    const b = await source.file(name, progress.forFile());
    if (b) progress.finish(b.length);
    return b;
  };

  const cfgBytes = await read(CONFIG_FILE);
  if (!cfgBytes) throw new CheckpointError(`no ${CONFIG_FILE} in ${where}`);
  const hfConfig = parseJson(cfgBytes, `${where}/${CONFIG_FILE}`);
  // Before any weights are downloaded, so an unsupported model fails fast.
  const config = normalizeConfig(hfConfig, `${where}/${CONFIG_FILE}`);

  const single = await read(SINGLE_FILE);
  if (single) {
    const file = new SafetensorsFile(single, `${where}/${SINGLE_FILE}`);
    const owner = new Map(file.names.map((n) => [n, file] as const));
    return { config, hfConfig, tensors: shardedLookup(owner, `${where}/${SINGLE_FILE}`) };
  }

  const indexBytes = await read(INDEX_FILE);
  if (!indexBytes) {
    throw new CheckpointError(`no weights in ${where}: neither ${SINGLE_FILE} nor ${INDEX_FILE} exists`);
  }
  const weightMap = readWeightMap(parseJson(indexBytes, `${where}/${INDEX_FILE}`), `${where}/${INDEX_FILE}`);

  const shards = new Map<string, SafetensorsFile>();
  for (const shardName of new Set(weightMap.values())) {
    const bytes = await read(shardName);
    if (!bytes) {
      throw new CheckpointError(`${where}/${INDEX_FILE} names shard "${shardName}", but ${where} has no such file`);
    }
    shards.set(shardName, new SafetensorsFile(bytes, `${where}/${shardName}`));
  }

  const owner = new Map<string, SafetensorsFile>();
  for (const [name, shardName] of weightMap) {
    const shard = shards.get(shardName)!;
    if (!shard.has(name)) {
      throw new CheckpointError(
        `${where}/${INDEX_FILE} puts tensor "${name}" in ${shardName}, but that shard does not hold it (${shard.names.length} tensors there)`,
      );
    }
    owner.set(name, shard);
  }
  return { config, hfConfig, tensors: shardedLookup(owner, `${where} (${shards.size} shards)`) };
}
