/**
 * A run's model onto the GPU: from the f32 weights kept in memory (small models), or streamed from the
 * checkpoint files tensor by tensor (large ones, see prepare.ts KEEP_WEIGHTS_MAX_BYTES). `extra` holds
 * the tensors the checkpoint lacks or that replace its values: LoRA A/B, the score head, a resumed or
 * imported adapter.
 */
import { DecoderGpu, type GpuContext, type GpuModelOptions } from '../engine/index.ts';
import { loadModelToGpu } from '../io/load-gpu.ts';
import { RunError, type RunModel } from './types.ts';

const ADAPTER_TENSOR = /(\.lora_[AB]\.weight|^score\.weight)$/;

export async function uploadRunModel(
  ctx: GpuContext,
  source: RunModel,
  options: Omit<GpuModelOptions, 'config'>,
  extra: ReadonlyMap<string, ArrayLike<number>>,
): Promise<DecoderGpu> {
  if (!source.files) {
    return DecoderGpu.create(
      ctx,
      { ...options, config: source.config },
      new Map([...source.weights, ...extra]),
    );
  }
  const replaced = [...extra.keys()].filter((name) => !ADAPTER_TENSOR.test(name));
  if (replaced.length > 0) {
    throw new RunError(
      `${source.name} streams from its files, so its base weights cannot be replaced (${replaced[0]}…).`,
      'Full finetuning and full-weight adapters are for models small enough to keep in memory; train LoRA adapters on this one.',
    );
  }
  const { model } = await loadModelToGpu(ctx, source.files.files, {
    ...options,
    weightFormat: options.weightFormat ?? 'f32',
    onProgress: source.files.onProgress,
    cache: source.files.cache,
    skipTokenizer: true,
    initial: () => extra,
  });
  return model;
}
