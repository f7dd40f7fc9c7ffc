/**
 * Helpers for the ONNX export of any decoder family (GPT-BigCode, Llama, Qwen2, StarCoder2): the
 * golden fixtures' models (tests/fixtures/engine, FORMAT.md) as export inputs, seeded models
 * (helpers.ts' randomBase/randomAdapter), and the float64 reference's logits of one function
 * per row, with the LoRA branch unmerged or with the weights exactly as one export format stores them.
 */
import { readFileSync } from 'node:fs';
import type { LoraConfig, LoraTarget } from '../../src/engine/model/config.ts';
import {
  blockLinears,
  describeDecoder,
  type LinearDesc,
  type ModelConfig,
} from '../../src/engine/model/decoder.ts';
import {
  dequantizeQ4_0,
  dequantizeQ8_0,
  f16ArrayToF32,
  f32ArrayToF16,
  quantizeQ4_0,
  quantizeQ8_0,
} from '../../src/engine/quant.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { forwardRef, type ParamMap } from '../../src/engine/reference/model.ts';
import type { DetectorAdapter } from '../../src/train/onnx/export.ts';
import { mergeLora, transpose, type OnnxWeightFormat } from '../../src/train/onnx/weights.ts';
import { randomAdapter, randomBase } from './helpers.ts';

export const FAMILY_CASES = [
  'llama_packed_cls_gqa',
  'llama_paper_ntp_full',
  'qwen2_packed_ntp_tied',
  'qwen2_paper_cls_full',
  'starcoder2_packed_cls_window',
  'starcoder2_paper_ntp_full',
] as const;
export type FamilyCase = (typeof FAMILY_CASES)[number];

interface FixtureJson {
  config: ModelConfig;
  lora: LoraConfig | null;
  objective: 'cls' | 'ntp';
  mode: 'packed' | 'paper';
  params: Record<string, { shape: number[]; data: number[] }>;
  batch: {
    input_ids: number[][];
    segment_ids: number[][];
    functions: { pack: number; last: number }[];
  };
  expected: { logits?: number[][] };
}

/** A model as the export takes it: base weights, and an adapter (LoRA pairs + score head) on top. */
export interface FamilyModel {
  config: ModelConfig;
  lora: LoraConfig | null;
  base: Map<string, Float32Array>;
  adapter: DetectorAdapter;
}

export interface FixtureModel extends FamilyModel {
  fixture: FixtureJson;
}

const isLora = (name: string) => name.includes('.lora_');

/**
 * A golden fixture's model: its parameters (f32; they are 4-decimal values) split into base weights
 * and the adapter (LoRA tensors and score.weight). The next-token cases have no score head: they get
 * a seeded one.
 */
export function fixtureModel(name: FamilyCase): FixtureModel {
  const fixture = JSON.parse(readFileSync(`tests/fixtures/engine/${name}.json`, 'utf8')) as FixtureJson;
  const tensors = new Map<string, Float32Array>(
    Object.entries(fixture.params).map(([k, v]) => [k, Float32Array.from(v.data)]),
  );
  if (!tensors.has('score.weight')) {
    const D = describeDecoder(fixture.config).width;
    tensors.set('score.weight', randomArray(new Rng(99), 2 * D, 1 / Math.sqrt(D)));
  }
  const base = new Map([...tensors].filter(([k]) => !isLora(k) && k !== 'score.weight'));
  const adapter = new Map([...tensors].filter(([k]) => isLora(k) || k === 'score.weight'));
  return {
    fixture,
    config: fixture.config,
    lora: fixture.lora,
    base,
    adapter: adapterOf(fixture.lora, adapter),
  };
}

function adapterOf(lora: LoraConfig | null, tensors: Map<string, Float32Array>): DetectorAdapter {
  // Without LoRA (a full finetune's cls head alone) r and alpha are never read.
  return { config: { r: lora?.r ?? 8, alpha: lora?.alpha ?? 16, targets: lora?.targets ?? [] }, tensors };
}

/**
 * A fixture's functions as the PyTorch reference scored them alone (code tokens from the function's
 * first to its last), with their expected logits: every function of a "packed" case, and in a
 * "paper" case the first function of each pack (the others read earlier functions).
 */
export function fixtureFunctions(f: FixtureJson): { tokens: number[]; logits: number[] }[] {
  const { input_ids, segment_ids, functions } = f.batch;
  return functions.flatMap((fn, i) => {
    const segments = segment_ids[fn.pack];
    let start = fn.last;
    while (start > 0 && segments[start - 1] === segments[fn.last]) start--;
    if (f.mode === 'paper' && start !== 0) return [];
    return [{ tokens: input_ids[fn.pack].slice(start, fn.last + 1), logits: f.expected.logits![i] }];
  });
}

/** A seeded model: random base weights and a LoRA adapter on every target (B not zero) with a score head. */
export function randomModel(config: ModelConfig, seed: number, r = 4, alpha = 8): FamilyModel {
  const adapter = randomAdapter(config, seed + 1, r, alpha);
  const lora: LoraConfig = { r, alpha, dropout: 0, targets: adapter.config.targets as LoraTarget[] };
  return { config, lora, base: randomBase(config, seed), adapter };
}

export function randomRows(rng: Rng, vocab: number, lengths: number[]): number[][] {
  return lengths.map((n) => Array.from({ length: n }, () => rng.int(vocab)));
}

/**
 * Float64 reference logits [rows][2] of each token list alone (one pack, positions 0..n−1): the score
 * head's, or with `answers` (a next-token detector) the LM head's " NO" and " YES" logits at the last token.
 */
export function referenceLogits(
  config: ModelConfig,
  params: ParamMap,
  lora: LoraConfig | null,
  rows: number[][],
  answers?: { yes: number; no: number },
): number[][] {
  return rows.map((tokens) => {
    const fwd = forwardRef(
      { config, lora, mode: 'packed' },
      params,
      {
        inputIds: [tokens],
        segmentIds: [tokens.map(() => 0)],
        positionIds: [tokens.map((_, i) => i)],
        functions: [{ pack: 0, last: tokens.length - 1, label: 0, weight: 1 }],
      },
      answers ? 'ntp' : 'cls',
    );
    if (!answers) return [fwd.logits[0], fwd.logits[1]];
    const at = (tokens.length - 1) * describeDecoder(config).vocab;
    return [fwd.logits[at + answers.no], fwd.logits[at + answers.yes]];
  });
}

/** Base weights with the adapter on top, in float64, LoRA unmerged (the model as trained). */
export function trainedParams(m: FamilyModel): ParamMap {
  const params: ParamMap = new Map();
  for (const [name, v] of m.base) params.set(name, Float64Array.from(v));
  for (const [name, v] of m.adapter.tensors) params.set(name, Float64Array.from(v));
  return params;
}

const f16Round = (v: Float32Array) => f16ArrayToF32(f32ArrayToF16(v));

/**
 * The weights exactly as the export stores them in `format`, as a LoRA-free float64 model: every
 * block linear merged (W + s·B·A, rounded once to f32) then rounded to f16 or quantized to q8_0/q4_0
 * and back; the token embedding merged with its adapter and, except in f32, rounded to f16; norms,
 * biases and the score head as they are (f32).
 */
export function exportedParams(m: FamilyModel, format: OnnxWeightFormat): ParamMap {
  const d = describeDecoder(m.config);
  const get = (name: string) => m.adapter.tensors.get(name) ?? m.base.get(name)!;
  const scaling = m.lora ? m.lora.alpha / m.lora.r : 0;
  const params = trainedParams(m);
  for (const name of [...params.keys()]) if (isLora(name)) params.delete(name);
  const stored = (l: LinearDesc, merged: Float32Array): Float32Array => {
    switch (format) {
      case 'f32':
        return merged;
      case 'f16':
        return f16Round(merged);
      case 'int8':
        return dequantizeQ8_0(l.out, l.in, quantizeQ8_0(l.out, l.in, merged));
      case 'int4':
        return dequantizeQ4_0(l.out, l.in, quantizeQ4_0(l.out, l.in, merged));
    }
  };
  for (const block of d.blocks) {
    for (const l of blockLinears(block)) {
      const name = `${l.module}.weight`;
      const A = m.adapter.tensors.get(`${l.module}.lora_A.weight`);
      const B = m.adapter.tensors.get(`${l.module}.lora_B.weight`);
      const merged =
        A && B ? mergeLora(get(name), l.out, l.in, A, B, m.lora!.r, scaling) : Float32Array.from(get(name));
      params.set(name, Float64Array.from(stored(l, merged)));
    }
  }
  const V = d.vocab;
  const D = d.width;
  const A = m.adapter.tensors.get(d.embeddingLora.a);
  const B = m.adapter.tensors.get(d.embeddingLora.b);
  let wte: Float32Array = Float32Array.from(get(d.tokenEmbedding));
  if (A && B) wte = transpose(mergeLora(transpose(wte, V, D), D, V, A, B, m.lora!.r, scaling), D, V);
  params.set(d.tokenEmbedding, Float64Array.from(format === 'f32' ? wte : f16Round(wte)));
  if (d.positionEmbedding) {
    const wpe = Float32Array.from(get(d.positionEmbedding.weight));
    params.set(d.positionEmbedding.weight, Float64Array.from(format === 'f32' ? wpe : f16Round(wpe)));
  }
  return params;
}
