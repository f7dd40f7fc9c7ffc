/**
 * Writes the PEFT round-trip fixture (tests/fixtures/peft/): a seeded random LoRA adapter + score head
 * for the demo model, exported by the lab's PEFT exporter, and a packed batch of demo functions.
 * `scripts/peft_roundtrip.py` then loads the adapter by its PEFT key names into the independent PyTorch
 * reference and writes the logits it computes (expected.json); tests/train/peft.test.ts checks that the
 * engine, importing the same adapter, computes the same logits.
 *
 * Run: npx tsx scripts/make-peft-fixture.ts && /usr/bin/python3 scripts/peft_roundtrip.py
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describeDecoder, loraParamSpecs } from '../src/engine/model/decoder.ts';
import { Rng } from '../src/engine/random.ts';
import { makeBatches } from '../src/data/batching.ts';
import { NodeDirModelFiles } from '../src/io/node-files.ts';
import { resolveConfig } from '../src/train/config.ts';
import { exportPeftAdapter } from '../src/train/export.ts';
import { loadRunModel } from '../src/train/prepare.ts';

const OUT = new URL('../tests/fixtures/peft/', import.meta.url);
const PACK_LENGTH = 256;
const FUNCTIONS = 5;

const prepared = await loadRunModel(new NodeDirModelFiles('public/models/demo'), 'demo');
const config = resolveConfig({ lora: { r: 4, alpha: 8, dropout: 0 } });
const lora = { ...config.lora };
const rng = new Rng(20240131);
const trainables = new Map<string, Float32Array>();
const shapes = new Map<string, number[]>();
for (const spec of loraParamSpecs(prepared.model.config, lora)) {
  const [rows, cols] = spec.shape;
  // B is not zero (unlike a fresh adapter) so the LoRA path changes the logits.
  const scale = spec.kind === 'lora-A' ? 1 / Math.sqrt(cols) : 0.2;
  trainables.set(
    spec.name,
    Float32Array.from({ length: rows * cols }, () => scale * rng.normal()),
  );
  shapes.set(spec.name, spec.shape);
}
const D = describeDecoder(prepared.model.config).width;
trainables.set(
  'score.weight',
  Float32Array.from({ length: 2 * D }, () => 0.5 * rng.normal()),
);
shapes.set('score.weight', [2, D]);

mkdirSync(new URL('adapter/', OUT), { recursive: true });
for (const file of exportPeftAdapter(trainables, shapes, config, 'demo')) {
  writeFileSync(new URL(`adapter/${file.name}`, OUT), file.bytes);
}

const lines = readFileSync('public/demo/java-vulns.jsonl', 'utf8').trim().split('\n').slice(0, FUNCTIONS);
const examples = lines.map((line, i) => {
  const tokens = prepared.tokenizer.encode((JSON.parse(line) as { code: string }).code).slice(0, 120);
  return { tokens, label: (i % 2) as 0 | 1, exampleIndex: i };
});
const { batches } = makeBatches(examples, {
  mode: 'packed',
  packLength: PACK_LENGTH,
  separatorId: prepared.model.separatorId,
  padId: prepared.model.padId,
  seed: 1,
  shuffle: false,
  rowsPerBatch: 8,
  padTo: 'pack-length',
});
if (batches.length !== 1) throw new Error(`expected one batch, got ${batches.length}`);
const batch = batches[0];
const rows = (a: Int32Array) =>
  Array.from({ length: batch.rows }, (_, r) =>
    Array.from(a.subarray(r * PACK_LENGTH, (r + 1) * PACK_LENGTH)),
  );
writeFileSync(
  new URL('batch.json', OUT),
  JSON.stringify({
    lora: { r: lora.r, alpha: lora.alpha },
    input_ids: rows(batch.inputIds),
    segment_ids: rows(batch.segmentIds),
    position_ids: rows(batch.positionIds),
    functions: batch.functions.map((f) => ({
      pack: f.pack,
      last: f.last - f.pack * PACK_LENGTH,
      label: f.label,
    })),
  }) + '\n',
);
console.log(
  `wrote ${trainables.size} adapter tensors and a batch of ${batch.rows} packs to tests/fixtures/peft/`,
);
