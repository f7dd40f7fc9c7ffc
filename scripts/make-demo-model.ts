/**
 * Makes the embedded demo model: a tiny GPT-BigCode checkpoint in Hugging Face layout.
 *
 *   npx tsx scripts/make-demo-model.ts
 *
 * Writes (deterministic for SEED):
 *   public/models/demo/config.json            tiny GPT-BigCode config (multi-query, gelu_pytorch_tanh)
 *   public/models/demo/tokenizer.json         byte-level BPE trained here on a generated Java corpus:
 *                                             <|endoftext|> = 0, the 256 byte symbols, merges, [PAD] last
 *   public/models/demo/tokenizer_config.json  eos/bos <|endoftext|>, pad [PAD], no clean-up on decode
 *   public/models/demo/model.safetensors      F32 weights: HF init (N(0, 0.02), LayerNorm ≈ 1), then next-token
 *                                             pretraining on a generated Java corpus with the lab's engine
 *   tests/fixtures/io/demo/demo-q8_0.gguf     the same weights as llama.cpp `starcoder` GGUF: block
 *                                             linears Q8_0, embeddings F16, norms and biases F32
 * `python3 scripts/make-io-fixtures.py` then writes the pytorch_model.bin copy from model.safetensors.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { baseParamSpecs, resolveConfig, type GptBigCodeConfig } from '../src/engine/model/config.ts';
import { Rng } from '../src/engine/random.ts';
import { loadTokenizer } from '../src/io/tokenizer.ts';
import { tokenizerJson, trainBpe } from './demo-model/bpe.ts';
import { demoGguf, demoSafetensors } from './demo-model/files.ts';
import { javaCorpus } from './demo-model/java-corpus.ts';
import { pretrain } from './demo-model/pretrain.ts';

export const SEED = 20240607;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'public/models/demo');
const FIXTURES = join(ROOT, 'tests/fixtures/io/demo');

const EOT = '<|endoftext|>';
const PAD = '[PAD]';
const TARGET_VOCAB = 2048;
/** Next-token pretraining on a corpus generated with another seed than the tokenizer's. */
const PRETRAIN = { documents: 6000, steps: 400, packLength: 1024, packsPerStep: 2, lr: 2e-3 };

async function main(): Promise<void> {
  // 1. Tokenizer.
  const corpus = javaCorpus(SEED, 1500);
  const bpe = trainBpe(corpus, TARGET_VOCAB - 1, [EOT]);
  const tok = tokenizerJson(bpe, [EOT], [PAD]);
  const vocabSize = bpe.vocab.size + 1;
  const padId = vocabSize - 1;

  // 2. Config.
  const config: GptBigCodeConfig & { model_type: string; architectures: string[] } = {
    model_type: 'gpt_bigcode',
    architectures: ['GPTBigCodeForCausalLM'],
    vocab_size: vocabSize,
    n_embd: 64,
    n_layer: 2,
    n_head: 4,
    n_inner: 256,
    n_positions: 1024,
    multi_query: true,
    activation_function: 'gelu_pytorch_tanh',
    layer_norm_epsilon: 1e-5,
    bos_token_id: 0,
    eos_token_id: 0,
    pad_token_id: padId,
  };
  const resolved = resolveConfig(config);

  // 3. Weights.
  const rng = new Rng(SEED);
  const tensors = baseParamSpecs(resolved, false).map((spec) => {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (spec.kind === 'norm' && spec.name.endsWith('.weight')) v[i] = 1 + 0.05 * rng.normal();
      else if (spec.kind === 'norm' || spec.kind === 'linear-bias') v[i] = 0.01 * rng.normal();
      else v[i] = 0.02 * rng.normal();
    }
    return { spec, values: v };
  });

  // 3b. Pretraining with the lab's engine, so the demo model's states depend on the code it reads.
  const tokenizer = loadTokenizer(JSON.stringify(tok), undefined, { padTokenId: padId, eosTokenId: 0 });
  const documents = javaCorpus(SEED + 1, PRETRAIN.documents).map((text) => tokenizer.encode(text));
  const pretrained = await pretrain(
    resolved,
    new Map(tensors.map(({ spec, values }) => [spec.name, values])),
    documents,
    { ...PRETRAIN, seed: SEED, eosId: 0, padId },
  );
  for (const t of tensors) t.values = Float32Array.from(pretrained.get(t.spec.name)!);

  mkdirSync(OUT, { recursive: true });
  mkdirSync(FIXTURES, { recursive: true });
  writeFileSync(join(OUT, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  writeFileSync(join(OUT, 'tokenizer.json'), JSON.stringify(tok));
  writeFileSync(
    join(OUT, 'tokenizer_config.json'),
    JSON.stringify(
      {
        tokenizer_class: 'GPT2TokenizerFast',
        bos_token: EOT,
        eos_token: EOT,
        unk_token: EOT,
        pad_token: PAD,
        model_max_length: config.n_positions,
        clean_up_tokenization_spaces: false,
        add_prefix_space: false,
      },
      null,
      2,
    ) + '\n',
  );
  const st = demoSafetensors(tensors, `scripts/make-demo-model.ts seed ${SEED}`);
  writeFileSync(join(OUT, 'model.safetensors'), st);

  // 4. GGUF copy.
  const gguf = demoGguf(config, tensors);
  writeFileSync(join(FIXTURES, 'demo-q8_0.gguf'), gguf);

  console.log(
    `demo model: vocab ${vocabSize} (${bpe.merges.length} merges), ${tensors.length} tensors, ` +
      `safetensors ${(st.byteLength / 1024).toFixed(0)} KiB, gguf ${(gguf.byteLength / 1024).toFixed(0)} KiB`,
  );
}

await main();
