/**
 * Trains the demo model's byte-level BPE on the JDK corpus and tokenizes the corpus with it.
 *
 *   npx tsx scripts/demo-model/train-tokenizer.ts [--corpus .cache/demo-model] [--vocab 4096] [--sample-mb 6]
 *       [--train-mb 60]
 *
 * Reads `train.jsonl` / `heldout.jsonl` from scripts/demo-model/build-corpus.py. The merges are learned on
 * a deterministic sample of the training documents (every k-th document up to `--sample-mb`); then every
 * document is encoded by the lab's own tokenizer code (src/io/tokenizer.ts, @huggingface/tokenizers), so
 * the pretraining sees exactly the ids the lab will feed the model (`--train-mb`: a deterministic sample of
 * the training documents, every k-th one, as the pretraining cannot read more in its time box). Writes into
 * the corpus folder:
 *   tokenizer/tokenizer.json, tokenizer/tokenizer_config.json
 *   train.bin, heldout.bin   uint16 token ids, documents separated by <|endoftext|> (id 0)
 *   tokens.json              token counts and characters per token
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { tokenizerJson, trainBpe } from './bpe.ts';

export const EOT = '<|endoftext|>';
export const PAD = '[PAD]';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function readDocs(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => (JSON.parse(line) as { text: string }).text);
}

/** tokenizer_config.json for a GPT-2-style tokenizer with `<|endoftext|>` as BOS/EOS and `[PAD]`. */
export function tokenizerConfig(maxLength: number): object {
  return {
    tokenizer_class: 'GPT2TokenizerFast',
    bos_token: EOT,
    eos_token: EOT,
    unk_token: EOT,
    pad_token: PAD,
    model_max_length: maxLength,
    clean_up_tokenization_spaces: false,
    add_prefix_space: false,
  };
}

/** Every k-th document, k chosen so that about `bytes` characters are taken. */
function everyKth(docs: string[], bytes: number): string[] {
  const total = docs.reduce((s, d) => s + d.length, 0);
  const stride = Math.max(1, Math.floor(total / bytes));
  const out: string[] = [];
  for (let i = 0, taken = 0; i < docs.length && taken < bytes; i += stride) {
    out.push(docs[i]);
    taken += docs[i].length;
  }
  return out;
}

function main(): void {
  const dir = flag('corpus', '.cache/demo-model');
  const vocabSize = Number(flag('vocab', '4096'));
  const allTrain = readDocs(join(dir, 'train.jsonl'));
  const heldout = readDocs(join(dir, 'heldout.jsonl'));
  const sample = everyKth(allTrain, Number(flag('sample-mb', '6')) * 1e6);
  const train = everyKth(allTrain, Number(flag('train-mb', '60')) * 1e6);
  const started = performance.now();
  // vocabSize − 1 merged symbols: the last id is [PAD], added after the vocabulary.
  const bpe = trainBpe(sample, vocabSize - 1, [EOT]);
  const tok = tokenizerJson(bpe, [EOT], [PAD]);
  console.log(
    `BPE: ${bpe.vocab.size + 1} tokens from ${sample.length} documents in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  mkdirSync(join(dir, 'tokenizer'), { recursive: true });
  writeFileSync(join(dir, 'tokenizer', 'tokenizer.json'), JSON.stringify(tok));
  writeFileSync(
    join(dir, 'tokenizer', 'tokenizer_config.json'),
    JSON.stringify(tokenizerConfig(1024), null, 2) + '\n',
  );

  const tokenizer = loadTokenizer(JSON.stringify(tok), undefined, {
    padTokenId: vocabSize - 1,
    eosTokenId: 0,
  });
  const counts: Record<string, { documents: number; tokens: number; chars: number }> = {};
  for (const [name, docs] of [
    ['train', train],
    ['heldout', heldout],
  ] as const) {
    const ids: number[] = [];
    let chars = 0;
    for (const doc of docs) {
      for (const id of tokenizer.encode(doc)) ids.push(id);
      ids.push(0);
      chars += doc.length;
    }
    writeFileSync(join(dir, `${name}.bin`), Uint16Array.from(ids));
    counts[name] = { documents: docs.length, tokens: ids.length, chars };
    console.log(
      `${name}: ${docs.length} documents, ${ids.length} tokens, ${(chars / ids.length).toFixed(2)} chars/token`,
    );
  }
  writeFileSync(join(dir, 'tokens.json'), JSON.stringify({ vocabSize, ...counts }, null, 2) + '\n');
}

main();
