/** The demo model's weight files: F32 safetensors, and the GGUF copy as llama.cpp's `starcoder` stores it. */
import { resolveConfig, type GptBigCodeConfig, type ParamSpec } from '../../src/engine/model/config.ts';
import { encodeWeight } from '../../src/engine/quant.ts';
import { hfToGgufName, writeGguf, type GgufWriteTensor } from '../../src/io/gguf.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { rowsCols } from '../../src/io/tensors.ts';

type DemoTensor = { spec: ParamSpec; values: Float32Array };

/** model.safetensors: every tensor F32, in the lab's order, with the maker named in the metadata. */
export function demoSafetensors(tensors: readonly DemoTensor[], source: string): Uint8Array {
  return writeSafetensors(
    tensors.map(({ spec, values }) => ({
      name: spec.name,
      dtype: 'F32' as const,
      shape: spec.shape,
      data: new Uint8Array(values.buffer),
    })),
    { format: 'pt', source },
  );
}

/** A "Q8_0" GGUF: block linears Q8_0, embeddings F16, norms and biases F32; `<|endoftext|>` = 0 is BOS and EOS. */
export function demoGguf(config: GptBigCodeConfig, tensors: readonly DemoTensor[]): Uint8Array {
  const ggufTensors: GgufWriteTensor[] = tensors.map(({ spec, values }) => {
    const [rows, cols] = rowsCols(spec.shape);
    const type = spec.kind === 'linear-weight' ? 'Q8_0' : spec.kind === 'embedding' ? 'F16' : 'F32';
    const format = type === 'Q8_0' ? 'q8_0' : type === 'F16' ? 'f16' : 'f32';
    return {
      name: hfToGgufName(spec.name),
      shape: spec.shape,
      type,
      data: encodeWeight(format, rows, cols, values),
    };
  });
  return writeGguf(
    {
      'general.architecture': { type: 'string', value: 'starcoder' },
      'general.name': { type: 'string', value: 'vulnlab-demo' },
      'general.file_type': { type: 'u32', value: 7 },
      'starcoder.context_length': { type: 'u32', value: config.n_positions },
      'starcoder.embedding_length': { type: 'u32', value: config.n_embd },
      'starcoder.feed_forward_length': { type: 'u32', value: resolveConfig(config).n_inner },
      'starcoder.block_count': { type: 'u32', value: config.n_layer },
      'starcoder.attention.head_count': { type: 'u32', value: config.n_head },
      'starcoder.attention.head_count_kv': { type: 'u32', value: 1 },
      'starcoder.attention.layer_norm_epsilon': { type: 'f32', value: config.layer_norm_epsilon },
      'tokenizer.ggml.bos_token_id': { type: 'u32', value: 0 },
      'tokenizer.ggml.eos_token_id': { type: 'u32', value: 0 },
      'tokenizer.ggml.padding_token_id': { type: 'u32', value: config.pad_token_id! },
    },
    ggufTensors,
  );
}
