/**
 * From model files to the engine's model on the GPU, in the page, a Web Worker or Node:
 *
 *   const { model, config, tokenizer } = await loadModelToGpu(ctx, files, {
 *     weightFormat: 'q4_0', lora, objective: 'cls', trainable: 'lora', mode: 'packed', seed,
 *     initial: (config) => initialTrainables(config, lora, true, seed), // LoRA A/B, score head
 *   });
 *
 * `loadModel` reads and validates the checkpoint (any source, safetensors / .bin / GGUF, the weight
 * cache) and streams it tensor by tensor into `DecoderGpu.begin`'s uploader: each tensor arrives in
 * its storage format (block linears in `weightFormat`, the rest f32), is uploaded and dropped, so the
 * CPU holds about one tensor at a time. On any failure every buffer uploaded so far is destroyed.
 */
import type { GpuContext } from '../engine/gpu/index.ts';
import type { ModelConfig } from '../engine/model/decoder.ts';
import {
  DecoderGpu,
  type DecoderUploader,
  type GpuModelOptions,
  type UploadStats,
} from '../engine/model/decoder-gpu.ts';
import type { ModelFiles } from './files.ts';
import { loadModel, type LoadedModel, type LoadOptions } from './load.ts';
import type { CodeTokenizer } from './tokenizer.ts';

export interface GpuLoadOptions
  extends
    Omit<LoadOptions, 'sink' | 'abort' | 'begin' | 'formatFor' | 'objective'>,
    Omit<GpuModelOptions, 'config' | 'weightFormat'> {
  /**
   * Values of the parameters no checkpoint holds — LoRA A/B when `lora`, `score.weight` for 'cls' —
   * for the loaded config (f32, by Hugging Face name).
   */
  initial?: (config: ModelConfig) => ReadonlyMap<string, ArrayLike<number>>;
}

export interface GpuLoadedModel {
  model: DecoderGpu;
  config: ModelConfig;
  tokenizer: CodeTokenizer | undefined;
  /** What was read: checkpoint format, files, tensors with their source dtypes, cache state. */
  loaded: LoadedModel;
  /** Tensors and bytes uploaded, and the most CPU bytes the upload held at once. */
  upload: UploadStats;
}

export async function loadModelToGpu(
  ctx: GpuContext,
  files: ModelFiles,
  options: GpuLoadOptions,
): Promise<GpuLoadedModel> {
  const { initial, lora, mode, objective, trainable, seed, ...load } = options;
  let uploader: DecoderUploader | undefined;
  try {
    const loaded = await loadModel(files, {
      ...load,
      objective,
      begin: (config) => {
        uploader = DecoderGpu.begin(ctx, {
          config,
          lora,
          mode,
          objective,
          trainable,
          seed,
          weightFormat: options.weightFormat,
        });
      },
      sink: (name, shape, format, bytes) => uploader!.put(name, shape, format, bytes),
      abort: () => uploader?.abort(),
    });
    const model = await uploader!.finish(initial?.(loaded.config) ?? new Map());
    return {
      model,
      config: loaded.config,
      tokenizer: loaded.tokenizer,
      loaded,
      upload: { ...uploader!.stats },
    };
  } catch (error) {
    uploader?.abort();
    throw error;
  }
}
