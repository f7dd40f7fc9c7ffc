/**
 * Packages the demo model v2 candidate: a small GPT-BigCode pretrained on the JDK's own Java sources
 * (scripts/demo-model/README.md: the pipeline, and why the candidate has not replaced the committed model).
 *
 * The whole rebuild:
 *
 *   apt-get install openjdk-17-source python3-torch                # Debian packages
 *   /usr/bin/python3 scripts/demo-model/build-corpus.py            # JDK src.zip → .cache/demo-model/*.jsonl
 *   npx tsx scripts/demo-model/train-tokenizer.ts                  # byte-level BPE + tokenized corpus (.bin)
 *   /usr/bin/python3 scripts/demo-model/pretrain.py --minutes 30   # PyTorch; run again to continue
 *   npx tsx scripts/demo-model/package.ts --out DIR                # this script
 *   /usr/bin/python3 scripts/make-io-fixtures.py                   # the pytorch_model.bin copy
 *   npx tsx scripts/make-peft-fixture.ts && /usr/bin/python3 scripts/peft_roundtrip.py
 *
 * Reads the tokenizer (`--corpus DIR`/tokenizer) and the pretraining run's `config.json` and
 * `model.safetensors` (`--run DIR`, default CORPUS/run) and writes:
 *   public/models/demo/config.json            GPT-BigCode config (multi-query, gelu_pytorch_tanh)
 *   public/models/demo/tokenizer.json         the byte-level BPE: <|endoftext|> = 0, bytes, merges, [PAD] last
 *   public/models/demo/tokenizer_config.json  eos/bos <|endoftext|>, pad [PAD], no clean-up on decode
 *   public/models/demo/model.safetensors      F32 weights in the lab's tensor order
 *   tests/fixtures/io/demo/demo-q8_0.gguf     the same weights as llama.cpp `starcoder` GGUF: block
 *                                             linears Q8_0, embeddings F16, norms and biases F32
 * `--out DIR` writes under DIR instead (to try a candidate before replacing the committed files).
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig, type GptBigCodeConfig } from '../../src/engine/model/config.ts';
import { baseParamSpecs } from '../../src/engine/model/decoder.ts';
import { NodeFileByteSource } from '../../src/io/node.ts';
import { readSafetensorsHeader } from '../../src/io/safetensors.ts';
import { readTensorBytes } from '../../src/io/tensors.ts';
import { demoGguf, demoSafetensors } from './files.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const CORPUS = flag('corpus') ?? join(ROOT, '.cache/demo-model');
const RUN = flag('run') ?? join(CORPUS, 'run');
const STAGING = flag('out');
const OUT = STAGING ? join(STAGING, 'models/demo') : join(ROOT, 'public/models/demo');
const FIXTURES = STAGING ? join(STAGING, 'fixtures/io/demo') : join(ROOT, 'tests/fixtures/io/demo');

async function main(): Promise<void> {
  const config = JSON.parse(readFileSync(join(RUN, 'config.json'), 'utf8')) as GptBigCodeConfig;
  const resolved = resolveConfig(config);

  const source = await NodeFileByteSource.open(join(RUN, 'model.safetensors'));
  const header = await readSafetensorsHeader(source);
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const tensors = await Promise.all(
    baseParamSpecs(resolved, false).map(async (spec) => {
      const entry = byName.get(spec.name);
      if (!entry || entry.dtype !== 'F32' || entry.shape.join() !== spec.shape.join()) {
        throw new Error(`${RUN}/model.safetensors: ${spec.name} missing or not F32 [${spec.shape}]`);
      }
      const bytes = await readTensorBytes(entry);
      return { spec, values: new Float32Array(bytes.slice().buffer) };
    }),
  );
  await source.close();

  mkdirSync(OUT, { recursive: true });
  mkdirSync(FIXTURES, { recursive: true });
  writeFileSync(join(OUT, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
    copyFileSync(join(CORPUS, 'tokenizer', file), join(OUT, file));
  }
  const st = demoSafetensors(tensors, header.metadata.source ?? 'scripts/demo-model/pretrain.py');
  writeFileSync(join(OUT, 'model.safetensors'), st);

  const gguf = demoGguf(config, tensors);
  writeFileSync(join(FIXTURES, 'demo-q8_0.gguf'), gguf);

  console.log(
    `demo model: vocab ${config.vocab_size}, ${tensors.length} tensors, ` +
      `safetensors ${(st.byteLength / 1024).toFixed(0)} KiB, gguf ${(gguf.byteLength / 1024).toFixed(0)} KiB`,
  );
}

await main();
