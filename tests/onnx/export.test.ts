/**
 * The exported ONNX detector run by onnxruntime-node (CPU) against independent references: the
 * PyTorch logits of the PEFT fixture (scripts/torch_reference.py) and the float64 CPU model with the
 * LoRA branch unmerged (src/engine/reference). Weight layouts against the lab's own quantizers;
 * external data as the ONNX spec lays it out.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GptBigCodeConfig, LoraTarget } from '../../src/engine/model/config.ts';
import type { ModelConfig } from '../../src/engine/model/decoder.ts';
import { dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0 } from '../../src/engine/quant.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { forwardRef, type ParamMap } from '../../src/engine/reference/model.ts';
import type { ImportedAdapter } from '../../src/train/export.ts';
import { onnx, toNumber } from '../../src/train/onnx/proto.ts';
import { mergeLora, toBlockInt8, toNBits4, type OnnxWeightFormat } from '../../src/train/onnx/weights.ts';
import type { PreparedModel } from '../../src/train/prepare.ts';
import {
  exportDetector,
  fixtureAdapter,
  loadDemo,
  maxAbsDiff,
  modelBytes,
  randomAdapter,
  randomBase,
  scoreWithOrtNode,
  tempDir,
  writeExport,
} from './helpers.ts';
import { randomRows, referenceLogits } from './family-helpers.ts';

describe('weight layouts', () => {
  const rng = new Rng(11);
  const [out, inp] = [5, 72]; // 72 = two whole blocks and a partial one
  const w = randomArray(rng, out * inp, 0.3);

  it('int8 (DequantizeLinear, blocked) decodes to the lab’s q8_0 weights exactly', () => {
    const { values, scales } = toBlockInt8(w, out, inp);
    const lab = dequantizeQ8_0(out, inp, quantizeQ8_0(out, inp, w));
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inp; i++) {
        const onnxValue = Math.fround(values[i * out + o] * scales[Math.floor(i / 32) * out + o]);
        expect(onnxValue).toBe(lab[o * inp + i]);
      }
    }
  });

  it('int4 (MatMulNBits, element 2t low nibble) decodes to the lab’s q4_0 weights exactly', () => {
    const { packed, scales, blocks } = toNBits4(w, out, inp);
    expect(blocks).toBe(3);
    const lab = dequantizeQ4_0(out, inp, quantizeQ4_0(out, inp, w));
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inp; i++) {
        const [b, e] = [Math.floor(i / 32), i % 32];
        const byte = packed[(o * blocks + b) * 16 + (e >> 1)];
        const code = e % 2 === 0 ? byte & 0x0f : byte >> 4;
        expect(Math.fround((code - 8) * scales[o * blocks + b])).toBe(lab[o * inp + i]);
      }
    }
  });

  it('mergeLora is W + (alpha/r)·B·A', () => {
    const r = 3;
    const A = randomArray(rng, r * inp);
    const B = randomArray(rng, out * r);
    const merged = mergeLora(w, out, inp, A, B, r, 2.5);
    for (const [o, i] of [
      [0, 0],
      [4, 71],
      [2, 33],
    ]) {
      let update = 0;
      for (let j = 0; j < r; j++) update += B[o * r + j] * A[j * inp + i];
      expect(merged[o * inp + i]).toBeCloseTo(w[o * inp + i] + 2.5 * update, 6);
    }
  });
});

/** The fixture batch's functions (segments of its packs) as token lists. */
function fixtureFunctions(): number[][] {
  const batch = JSON.parse(readFileSync('tests/fixtures/peft/batch.json', 'utf8')) as {
    input_ids: number[][];
    segment_ids: number[][];
    functions: { pack: number; last: number }[];
  };
  return batch.functions.map((f) => {
    const segments = batch.segment_ids[f.pack];
    let start = f.last;
    while (start > 0 && segments[start - 1] === segments[f.last]) start--;
    return batch.input_ids[f.pack].slice(start, f.last + 1);
  });
}

describe('the demo detector in onnxruntime-node against the PyTorch reference', () => {
  let demo: PreparedModel;
  let adapter: ImportedAdapter;
  beforeAll(async () => {
    demo = await loadDemo();
    adapter = await fixtureAdapter();
  });

  // Logit error relative to the largest logit (≈ 9): f32 is rounding only; f16 rounds every weight to
  // 11 bits; int8/int4 are the lab's q8_0/q4_0 of the merged weights, on a model only 64 wide.
  const tolerance: Record<OnnxWeightFormat, number> = { f32: 1e-5, f16: 3e-3, int8: 5e-2, int4: 0.3 };
  for (const format of ['f32', 'f16', 'int8', 'int4'] as const) {
    it(`${format}: logits of the fixture functions`, async () => {
      const expected = (
        JSON.parse(readFileSync('tests/fixtures/peft/expected.json', 'utf8')) as { logits: number[][] }
      ).logits;
      const path = writeExport(exportDetector(demo.model, adapter, format), tempDir(format));
      const scores = await scoreWithOrtNode(path, fixtureFunctions());
      const got = scores.flatMap((s) => s.logits);
      const want = expected.flat();
      const scale = Math.max(...want.map(Math.abs));
      expect(maxAbsDiff(got, want) / scale).toBeLessThan(tolerance[format]);
      for (const s of scores)
        expect(s.probability).toBeCloseTo(1 / (1 + Math.exp(s.logits[0] - s.logits[1])), 5);
    });
  }
});

/** Float64 reference logits of each function alone (one pack each, the adapter unmerged). */
function adapterLogits(
  config: ModelConfig,
  base: ReadonlyMap<string, ArrayLike<number>>,
  adapter: ImportedAdapter,
  rows: number[][],
): number[][] {
  const params: ParamMap = new Map();
  for (const [name, v] of base) params.set(name, Float64Array.from(v));
  for (const [name, v] of adapter.tensors) params.set(name, Float64Array.from(v));
  const { r, alpha } = adapter.config;
  const lora = { r, alpha, dropout: 0, targets: adapter.config.targets as LoraTarget[] };
  return referenceLogits(config, params, lora, rows);
}

describe('the graph against the float64 reference model (padding, attention kinds, GELU kinds)', () => {
  const multiHead: GptBigCodeConfig = {
    vocab_size: 61,
    n_embd: 24,
    n_layer: 2,
    n_head: 3,
    n_inner: 40,
    n_positions: 48,
    multi_query: false,
    activation_function: 'gelu',
    layer_norm_epsilon: 1e-5,
  };

  it('multi-head attention, erf GELU: right-padded rows of mixed lengths score as if alone', async () => {
    const base = randomBase(multiHead, 3);
    const adapter = randomAdapter(multiHead, 4, 2, 5);
    const rows = randomRows(new Rng(5), multiHead.vocab_size, [1, 7, 33, 2, 48, 19]);
    const path = writeExport(
      exportDetector({ name: 'random', config: multiHead, weights: base }, adapter, 'f32'),
      tempDir('mha'),
    );
    // One run with every row padded to 48: padding must not reach the real tokens.
    const scores = await scoreWithOrtNode(path, rows, 60);
    const want = adapterLogits(multiHead, base, adapter, rows);
    const got = scores.map((s) => s.logits);
    const scale = Math.max(...want.flat().map(Math.abs));
    expect(maxAbsDiff(got.flat(), want.flat()) / scale).toBeLessThan(1e-5);
  });

  it('multi-query attention, tanh GELU (the demo model) with a random adapter', async () => {
    const demo = await loadDemo();
    const adapter = randomAdapter(demo.model.config, 6);
    const rows = randomRows(new Rng(7), demo.model.config.vocab_size, [3, 40, 1, 25]);
    const path = writeExport(exportDetector(demo.model, adapter, 'f32'), tempDir('mqa'));
    const got = (await scoreWithOrtNode(path, rows, demo.model.padId)).map((s) => s.logits);
    const want = adapterLogits(demo.model.config, demo.model.weights, adapter, rows);
    const scale = Math.max(...want.flat().map(Math.abs));
    expect(maxAbsDiff(got.flat(), want.flat()) / scale).toBeLessThan(1e-5);
  });
});

describe('a full finetune (the adapter replaces base weights, no LoRA pairs)', () => {
  it('exports the replaced weights as they are', async () => {
    const config: GptBigCodeConfig = {
      vocab_size: 40,
      n_embd: 16,
      n_layer: 1,
      n_head: 2,
      n_positions: 24,
      multi_query: true,
      activation_function: 'gelu_pytorch_tanh',
      layer_norm_epsilon: 1e-5,
    };
    const base = randomBase(config, 12);
    const tuned = randomBase(config, 13);
    tuned.set('score.weight', randomArray(new Rng(14), 2 * 16, 0.5));
    const adapter = { config: { r: 8, alpha: 16, targets: [] }, tensors: tuned };
    const exported = exportDetector({ name: 'random', config, weights: base }, adapter, 'f32');
    expect(exported.metadata.lora).toBeNull();
    const rows = randomRows(new Rng(15), config.vocab_size, [4, 24, 9]);
    const got = (await scoreWithOrtNode(writeExport(exported, tempDir('full')), rows)).map((s) => s.logits);
    const params: ParamMap = new Map([...tuned].map(([name, v]) => [name, Float64Array.from(v)]));
    const want = rows.map((tokens) => {
      const fwd = forwardRef(
        { config, lora: null, mode: 'packed' },
        params,
        {
          inputIds: [tokens],
          segmentIds: [tokens.map(() => 0)],
          positionIds: [tokens.map((_, i) => i)],
          functions: [{ pack: 0, last: tokens.length - 1, label: 0, weight: 1 }],
        },
        'cls',
      );
      return [fwd.logits[0], fwd.logits[1]];
    });
    const scale = Math.max(...want.flat().map(Math.abs));
    expect(maxAbsDiff(got.flat(), want.flat()) / scale).toBeLessThan(1e-5);
  });
});

describe('external data', () => {
  it('above the inline limit the weights go to model.onnx.data with location/offset/length', async () => {
    const demo = await loadDemo();
    const adapter = randomAdapter(demo.model.config, 8);
    const inline = exportDetector(demo.model, adapter, 'f16');
    const external = exportDetector(demo.model, adapter, 'f16', { maxInlineBytes: 64 * 1024 });
    expect(inline.metadata.files.externalData).toBeNull();
    expect(external.metadata.files.externalData).toBe('model.onnx.data');
    const dir = tempDir('external');
    const path = writeExport(external, dir);
    const data = readFileSync(join(dir, 'model.onnx.data'));

    const inlineTensors = new Map(
      onnx.ModelProto.decode(modelBytes(inline)).graph!.initializer!.map((t) => [t.name, t]),
    );
    const tensors = onnx.ModelProto.decode(modelBytes(external)).graph!.initializer!;
    const moved = tensors.filter((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
    expect(moved.length).toBeGreaterThan(10);
    for (const t of moved) {
      const field = (key: string) => t.externalData?.find((e) => e.key === key)?.value;
      const [offset, length] = [Number(field('offset')), Number(field('length'))];
      expect(field('location')).toBe('model.onnx.data');
      expect(offset % 4096).toBe(0);
      expect(t.rawData?.length ?? 0).toBe(0);
      const inlineBytes = Buffer.from(inlineTensors.get(t.name)!.rawData!);
      expect(data.subarray(offset, offset + length).equals(inlineBytes)).toBe(true);
    }
    // Small tensors stay inline.
    expect(tensors.some((t) => t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL)).toBe(true);
    expect(toNumber(onnx.ModelProto.decode(modelBytes(external)).irVersion)).toBe(10);

    const rows = randomRows(new Rng(9), demo.model.config.vocab_size, [5, 17]);
    const fromExternal = await scoreWithOrtNode(path, rows);
    const fromInline = await scoreWithOrtNode(writeExport(inline, tempDir('inline')), rows);
    expect(fromExternal).toEqual(fromInline);
  });
});
