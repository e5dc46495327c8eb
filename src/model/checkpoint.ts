/**
 * Load a Hugging Face checkpoint folder from a `ModelSource`: `config.json`, then either one
 * `model.safetensors` or the shards named by `model.safetensors.index.json`. Weights are read
 * header first: `loadCheckpoint` reads and validates the config and every file's header, and
 * returns one name -> tensor lookup across all shards whose tensors are read from their files,
 * each by its own byte range, only when asked for. So a checkpoint of any size needs host memory
 * for the tensors in use only, and one of the wrong model is refused after its headers.
 */
import type { ModelConfig } from './config.ts';
import { normalizeConfig } from './normalize-config.ts';
import { SafetensorsReader, similarNames, type StTensorInfo } from './safetensors.ts';
import { bytesFile, checkFolderFileName, type ModelSource, type ProgressFn, type RandomAccessFile } from './source.ts';

export const CONFIG_FILE = 'config.json';
export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** Tensors by name, wherever they are stored. `read` loads one from its file, widening F16 / BF16. */
export interface TensorLookup {
  names: string[];
  has(name: string): boolean;
  info(name: string): StTensorInfo;
  /** The tensor as fp32, row-major, read now (the caller owns the array). */
  read(name: string): Promise<Float32Array>;
}

export interface Checkpoint {
  config: ModelConfig;
  /** The parsed `config.json`, untouched. */
  hfConfig: unknown;
  tensors: TensorLookup;
  /** Reports the files as fully loaded (tensors never read are skipped): call when done reading. */
  finish(): void;
}

/** One lookup over several files; `owner` maps each tensor name to the file holding it. */
function shardedLookup(owner: Map<string, SafetensorsReader>, describe: string): TensorLookup {
  const names = [...owner.keys()];
  const fileOf = (name: string): SafetensorsReader => {
    const f = owner.get(name);
    if (!f) {
      const near = similarNames(name, names);
      throw new CheckpointError(`${describe}: no tensor "${name}" (${names.length} tensors` + (near.length ? `; similar: ${near.map((n) => `"${n}"`).join(', ')}` : '') + ')');
    }
    return f;
  };
  return {
    names,
    has: (name) => owner.has(name),
    info: (name) => fileOf(name).info(name),
    read: (name) => fileOf(name).read(name),
  };
}

/** Sums progress over several files, read one after another or interleaved. */
class ProgressAggregate {
  private readonly files = new Map<string, { loaded: number; total: number }>();
  constructor(private readonly sink: ProgressFn | undefined) {}

  forFile(name: string): ProgressFn | undefined {
    if (!this.sink) return undefined;
    return ({ loaded, total }) => {
      this.files.set(name, { loaded, total: Math.max(total, loaded) });
      this.report(name);
    };
  }

  /** Marks a file as read whole (`bytes` long). */
  finish(name: string, bytes: number): void {
    this.files.set(name, { loaded: bytes, total: bytes });
  }

  /** Marks every file as done (a file's unread tensors count as read). */
  finishAll(): void {
    if (!this.sink || this.files.size === 0) return;
    let last = '';
    for (const [name, f] of this.files) {
      this.files.set(name, { loaded: f.total, total: f.total });
      last = name;
    }
    this.report(last);
  }

  private report(file: string): void {
    let loaded = 0;
    let total = 0;
    for (const f of this.files.values()) {
      loaded += f.loaded;
      total += f.total;
    }
    this.sink?.({ loaded, total, file });
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

/** `weight_map` of a sharded index: tensor name -> shard file name (a file of the same folder). */
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
    try {
      checkFolderFileName(shard, `${what}: weight_map["${name}"]`);
    } catch (e) {
      throw new CheckpointError((e as Error).message);
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
    const b = await source.file(name, progress.forFile(name));
    if (b) progress.finish(name, b.length);
    return b;
  };
  // Weights: by byte range where the source can, else read whole (which reported its progress).
  const open = async (name: string): Promise<RandomAccessFile | null> => {
    if (source.open) return source.open(name, progress.forFile(name));
    const b = await read(name);
    return b && bytesFile(b);
  };
  const finish = () => progress.finishAll();

  const cfgBytes = await read(CONFIG_FILE);
  if (!cfgBytes) throw new CheckpointError(`no ${CONFIG_FILE} in ${where}`);
  const hfConfig = parseJson(cfgBytes, `${where}/${CONFIG_FILE}`);
  // Before any weights are read, so an unsupported model fails fast.
  const config = normalizeConfig(hfConfig, `${where}/${CONFIG_FILE}`);

  const single = await open(SINGLE_FILE);
  if (single) {
    const file = await SafetensorsReader.open(single, `${where}/${SINGLE_FILE}`);
    const owner = new Map(file.names.map((n) => [n, file] as const));
    return { config, hfConfig, tensors: shardedLookup(owner, `${where}/${SINGLE_FILE}`), finish };
  }

  const indexBytes = await read(INDEX_FILE);
  if (!indexBytes) {
    throw new CheckpointError(`no weights in ${where}: neither ${SINGLE_FILE} nor ${INDEX_FILE} exists`);
  }
  const weightMap = readWeightMap(parseJson(indexBytes, `${where}/${INDEX_FILE}`), `${where}/${INDEX_FILE}`);

  const shards = new Map<string, SafetensorsReader>();
  for (const shardName of new Set(weightMap.values())) {
    const file = await open(shardName);
    if (!file) {
      throw new CheckpointError(`${where}/${INDEX_FILE} names shard "${shardName}", but ${where} has no such file`);
    }
    shards.set(shardName, await SafetensorsReader.open(file, `${where}/${shardName}`));
  }

  const owner = new Map<string, SafetensorsReader>();
  for (const [name, shardName] of weightMap) {
    const shard = shards.get(shardName)!;
    if (!shard.has(name)) {
      throw new CheckpointError(`${where}/${INDEX_FILE} puts tensor "${name}" in ${shardName}, but that shard does not hold it (${shard.names.length} tensors there)`);
    }
    owner.set(name, shard);
  }
  return { config, hfConfig, tensors: shardedLookup(owner, `${where} (${shards.size} shards)`), finish };
}
