/**
 * The ONNX export of Llama-family detectors (llama, qwen2, starcoder2) in onnxruntime-node: RMSNorm,
 * LayerNorm with bias, q/k/v projections with and without biases, rotary positions (θ, linear scaling),
 * grouped-query, multi-query and multi-head attention, StarCoder2's sliding window, SwiGLU and GELU MLPs,
 * the LoRA merge (linears and the token embedding). References: the PyTorch logits of the golden
 * fixtures (tests/fixtures/engine, scripts/torch_reference.py) and the float64 reference model
 * (src/engine/reference/model.ts) with the LoRA branch unmerged, or with the weights exactly as the
 * format stores them.
 */
import * as ort from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../src/engine/model/decoder.ts';
import { Rng } from '../../src/engine/random.ts';
import { type DetectorModelInfo, type OnnxExport } from '../../src/train/onnx/export.ts';
import { inspectOnnxDetector } from '../../src/train/onnx/inspect.ts';
import { onnx } from '../../src/train/onnx/proto.ts';
import { scoreWithSession, type OrtTensorConstructor } from '../../src/train/onnx/scan.ts';
import type { OnnxWeightFormat } from '../../src/train/onnx/weights.ts';
import {
  FAMILY_CASES,
  exportedParams,
  fixtureFunctions,
  fixtureModel,
  randomModel,
  randomRows,
  referenceLogits,
  trainedParams,
  type FamilyModel,
} from './family-helpers.ts';
import { exportDetector, maxAbsDiff, modelBytes, scoreWithOrtNode, tempDir, writeExport } from './helpers.ts';

const FORMATS = ['f32', 'f16', 'int8', 'int4'] as const;
/**
 * Logit error relative to the largest logit against a reference with unrounded weights, as
 * tests/onnx/export.test.ts states it per format: f32 is rounding only; f16 rounds every weight to 11
 * bits; int8/int4 are the lab's q8_0/q4_0 of the merged weights. int4 there is 0.3 on the 64-wide demo
 * model; these models are 32 wide (one q4_0 block per row) and measure up to 0.43 (llama_packed_cls_gqa
 * 0.38, qwen2_paper_cls_full 0.43 against PyTorch): the format's rounding, as the check against the
 * stored weights (EXACT, every format) shows the graph itself adds none.
 */
const TOLERANCE: Record<OnnxWeightFormat, number> = { f32: 1e-5, f16: 3e-3, int8: 5e-2, int4: 0.5 };
/** Against the reference holding the very weights the format stores, every format is f32 rounding only. */
const EXACT = 1e-5;
/** ONNX Runtime's CPU provider otherwise quantizes int8 DequantizeLinear + MatMul's activations too. */
const EXACT_INT8 = { extra: { session: { qdq_matmulnbits_accuracy_level: '0' } } };

const relError = (got: number[][], want: number[][]) =>
  maxAbsDiff(got.flat(), want.flat()) / Math.max(...want.flat().map(Math.abs));

function exportModel(m: FamilyModel, format: OnnxWeightFormat, name = 'random'): OnnxExport {
  return exportDetector({ name, config: m.config, weights: m.base }, m.adapter, format);
}

async function onnxLogits(
  exported: OnnxExport,
  rows: number[][],
  padId: number,
  options: ort.InferenceSession.SessionOptions = {},
): Promise<number[][]> {
  const path = writeExport(exported, tempDir('family'));
  return (await scoreWithOrtNode(path, rows, padId, options)).map((s) => s.logits);
}

/** Rows of mixed lengths up to the model's 48 positions, scored padded together in one run. */
const LENGTHS = [1, 7, 33, 2, 48, 19, 5];

describe('Llama-family detectors against the PyTorch fixtures (functions scored alone)', () => {
  for (const name of [
    'llama_packed_cls_gqa',
    'qwen2_paper_cls_full',
    'starcoder2_packed_cls_window',
  ] as const) {
    for (const format of FORMATS) {
      it(`${name}, ${format}`, async () => {
        const m = fixtureModel(name);
        const functions = fixtureFunctions(m.fixture);
        expect(functions.length).toBeGreaterThanOrEqual(m.fixture.mode === 'paper' ? 2 : 7);
        const got = await onnxLogits(
          exportModel(m, format, name),
          functions.map((f) => f.tokens),
          0,
        );
        const error = relError(
          got,
          functions.map((f) => f.logits),
        );
        console.log(`${name} ${format}: max |Δlogit| / max |logit| vs PyTorch = ${error.toExponential(2)}`);
        expect(error).toBeLessThan(TOLERANCE[format]);
      });
    }
  }
});

describe('Llama-family detectors against the float64 reference (every fixture model, every format)', () => {
  for (const name of FAMILY_CASES) {
    for (const format of FORMATS) {
      it(`${name}, ${format}: right-padded rows of mixed lengths`, async () => {
        const m = fixtureModel(name);
        const vocab = (m.config as { vocab_size: number }).vocab_size;
        const rows = randomRows(new Rng(21), vocab, LENGTHS);
        // One run, every row padded to 48 with the last id: padding must not reach the real tokens.
        const exported = exportModel(m, format, name);
        const got = await onnxLogits(exported, rows, vocab - 1, format === 'int8' ? EXACT_INT8 : {});
        const exact = relError(got, referenceLogits(m.config, exportedParams(m, format), null, rows));
        const trained = relError(got, referenceLogits(m.config, trainedParams(m), m.lora, rows));
        console.log(
          `${name} ${format}: vs the stored weights ${exact.toExponential(2)}, vs the trained model ${trained.toExponential(2)}`,
        );
        expect(exact).toBeLessThan(EXACT);
        expect(trained).toBeLessThan(TOLERANCE[format]);
      });
    }
  }
});

/** Shapes and options the fixtures do not have (each with LoRA on every target, the embedding's too). */
const SHAPES: { what: string; config: ModelConfig }[] = [
  {
    what: 'llama, multi-query (1 kv head), head_dim 8 ≠ hidden/heads, linear rope ×4, biases',
    config: {
      model_type: 'llama',
      vocab_size: 53,
      hidden_size: 24,
      intermediate_size: 40,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 8,
      hidden_act: 'silu',
      max_position_embeddings: 40,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      rope_scaling: { rope_type: 'linear', factor: 4 },
      attention_bias: true,
      mlp_bias: true,
    },
  },
  {
    what: 'llama, multi-head (kv heads = heads), tied embeddings',
    config: {
      model_type: 'llama',
      vocab_size: 47,
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      hidden_act: 'silu',
      max_position_embeddings: 40,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: true,
    },
  },
  {
    what: 'qwen2 with use_sliding_window (window 5), 6 heads in 2 groups of 3',
    config: {
      model_type: 'qwen2',
      vocab_size: 59,
      hidden_size: 48,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 6,
      num_key_value_heads: 2,
      hidden_act: 'silu',
      max_position_embeddings: 40,
      rms_norm_eps: 1e-6,
      rope_theta: 1e6,
      use_sliding_window: true,
      sliding_window: 5,
    },
  },
  {
    what: 'starcoder2 without biases (LayerNorm without bias), erf GELU, no window, 1 kv head',
    config: {
      model_type: 'starcoder2',
      vocab_size: 41,
      hidden_size: 32,
      intermediate_size: 56,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      hidden_act: 'gelu',
      max_position_embeddings: 40,
      norm_epsilon: 1e-5,
      use_bias: false,
      sliding_window: null,
    },
  },
];

describe('shapes the fixtures do not cover, f32 against the float64 reference', () => {
  SHAPES.forEach(({ what, config }, i) => {
    it(what, async () => {
      const m = randomModel(config, 40 + i);
      const vocab = (config as { vocab_size: number }).vocab_size;
      const rows = randomRows(new Rng(50 + i), vocab, [1, 9, 40, 3, 17]);
      const got = await onnxLogits(exportModel(m, 'f32'), rows, 0);
      const error = relError(got, referenceLogits(config, trainedParams(m), m.lora, rows));
      console.log(`${what}: ${error.toExponential(2)}`);
      expect(error).toBeLessThan(TOLERANCE.f32);
    });
  });
});

describe('the export of a Llama-family model', () => {
  it('describes the model, names the merged q/k/v and uses the family’s operators', () => {
    const m = fixtureModel('starcoder2_packed_cls_window');
    const exported = exportModel(m, 'int4', 'tiny-starcoder2');
    const meta = exported.metadata;
    expect(meta.model).toEqual({
      model_type: 'starcoder2',
      vocab_size: 61,
      n_embd: 32,
      n_layer: 2,
      n_head: 4,
      n_kv_head: 2,
      head_dim: 8,
      multi_query: false,
      n_inner: 80,
      n_positions: 48,
      activation_function: 'gelu_pytorch_tanh',
      norm: 'layernorm',
      norm_epsilon: 1e-5,
      rope_theta: 1e5,
      rope_scaling: 1,
      sliding_window: 4,
    } satisfies DetectorModelInfo);
    expect(meta.lora).toEqual({ r: 2, alpha: 3, targets: m.lora!.targets });
    expect(meta.operators).toEqual(
      expect.arrayContaining(['LayerNormalization', 'Cos', 'Sin', 'Less', 'com.microsoft.FastGelu']),
    );
    expect(meta.operators).toContain('com.microsoft.MatMulNBits');
    const readme = new TextDecoder().decode(exported.files.find((f) => f.name === 'README.md')!.chunks[0]);
    expect(readme).toMatch(/^StarCoder2 \(tiny-starcoder2\) finetuned with LoRA/m);
    const bytes = modelBytes(exported);
    expect(inspectOnnxDetector(bytes, 'model.onnx').metadata).toEqual(meta);
    const graph = onnx.ModelProto.decode(bytes).graph!;
    expect(graph.name).toBe('vulnlab_starcoder2_detector');
    const names = graph.initializer!.map((t) => t.name);
    expect(names).toContain('model.layers.0.self_attn.qkv_proj.weight_q4');
    expect(names).toContain('model.layers.0.self_attn.qkv_proj.bias');
    expect(names.some((n) => n!.includes('q_proj'))).toBe(false);

    const llama = exportModel(fixtureModel('llama_packed_cls_gqa'), 'f32');
    expect(llama.metadata.operators).toEqual(
      expect.arrayContaining(['Pow', 'ReduceMean', 'Sqrt', 'Div', 'Sigmoid', 'Cos', 'Sin']),
    );
    expect(llama.metadata.operators).not.toContain('LayerNormalization');
    expect(llama.metadata.operators).not.toContain('Less'); // no window
    expect(llama.metadata.model).toMatchObject({
      model_type: 'llama',
      norm: 'rmsnorm',
      activation_function: 'silu',
    });
  });

  it('refuses an adapter for another family (GPT-BigCode names on a Llama model)', () => {
    const m = fixtureModel('llama_packed_cls_gqa');
    const tensors = new Map(m.adapter.tensors);
    tensors.set('transformer.h.0.attn.c_attn.lora_A.weight', new Float32Array(4 * 32));
    expect(() =>
      exportDetector({ name: 'x', config: m.config, weights: m.base }, { ...m.adapter, tensors }, 'f32'),
    ).toThrow(/tensors this model does not use: transformer\.h\.0\.attn\.c_attn\.lora_A\.weight/);
    tensors.delete('transformer.h.0.attn.c_attn.lora_A.weight');
    tensors.delete('model.layers.1.self_attn.k_proj.lora_B.weight');
    expect(() =>
      exportDetector({ name: 'x', config: m.config, weights: m.base }, { ...m.adapter, tensors }, 'f32'),
    ).toThrow(/only one of model\.layers\.1\.self_attn\.k_proj\.lora_A\/lora_B/);
  });

  it('onnxruntime-web (WASM, in Node) scores as onnxruntime-node', async () => {
    for (const name of ['qwen2_packed_ntp_tied', 'starcoder2_packed_cls_window'] as const) {
      const m = fixtureModel(name);
      const rows = randomRows(new Rng(31), 61, LENGTHS);
      const path = writeExport(exportModel(m, 'f32'), tempDir('family-web'));
      ortWeb.env.wasm.numThreads = 1;
      const session = await ortWeb.InferenceSession.create(path);
      try {
        const web = await scoreWithSession(session, ortWeb.Tensor as unknown as OrtTensorConstructor, rows, {
          padId: 0,
        });
        const node = await scoreWithOrtNode(path, rows, 0);
        const error = relError(
          web.map((s) => s.logits),
          node.map((s) => s.logits),
        );
        expect(error).toBeLessThan(1e-5);
      } finally {
        await session.release();
      }
    }
  });
});

/**
 * RMSNorm is written as primitive ops (graph.ts). ONNX Runtime fuses them into its
 * SimplifiedLayerNormalization kernel at load; the graph with that contrib op written in place of
 * them gives the same logits.
 */
describe('RMSNorm as primitive ops', () => {
  /** The export with every Pow → … → Mul RMSNorm chain replaced by one SimplifiedLayerNormalization. */
  function withSimplifiedLayerNorm(bytes: Uint8Array, eps: number): Uint8Array {
    const model = onnx.ModelProto.decode(bytes);
    const nodes = model.graph!.node!;
    const prefixes = nodes.flatMap((n) => n.name!.match(/^(.*)\.square\/Pow$/)?.slice(1) ?? []);
    const chain = new Set(
      prefixes.flatMap((p) =>
        ['square/Pow', 'mean_square/ReduceMean', 'variance/Add', 'rms/Sqrt', 'normalized/Div', 'out/Mul'].map(
          (s) => `${p}.${s}`,
        ),
      ),
    );
    const replaced: typeof nodes = [];
    for (const n of nodes) {
      const prefix = prefixes.find((p) => n.name === `${p}.square/Pow`);
      if (prefix !== undefined) {
        replaced.push({
          opType: 'SimplifiedLayerNormalization',
          domain: '',
          name: `${prefix}/SimplifiedLayerNormalization`,
          input: [n.input![0], `${prefix}.weight`],
          output: [`${prefix}.out`],
          attribute: [
            { name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -1 },
            { name: 'epsilon', type: onnx.AttributeProto.AttributeType.FLOAT, f: eps },
          ],
        });
      } else if (!chain.has(n.name!)) replaced.push(n);
    }
    expect(prefixes.length).toBe(5); // 2 blocks × 2 norms + the final norm
    model.graph!.node = replaced;
    return onnx.ModelProto.encode(model).finish();
  }

  it('ONNX Runtime fuses them into SimplifiedLayerNormalization, with the contrib op’s logits', async () => {
    const m = fixtureModel('llama_packed_cls_gqa');
    const dir = tempDir('rmsnorm');
    const primitive = writeExport(exportModel(m, 'f32'), dir);
    const fusedPath = join(dir, 'optimized.onnx');
    const session = await ort.InferenceSession.create(primitive, {
      optimizedModelFilePath: fusedPath,
      logSeverityLevel: 3,
    });
    await session.release();
    const fusedOps = onnx.ModelProto.decode(readFileSync(fusedPath)).graph!.node!.map((n) => n.opType);
    expect(fusedOps.filter((op) => op === 'SimplifiedLayerNormalization')).toHaveLength(5);
    expect(fusedOps).not.toContain('ReduceMean');

    const contrib = join(dir, 'contrib.onnx');
    writeFileSync(contrib, withSimplifiedLayerNorm(new Uint8Array(readFileSync(primitive)), 1e-6));
    const rows = randomRows(new Rng(8), 61, LENGTHS);
    const a = (await scoreWithOrtNode(primitive, rows, 0)).map((s) => s.logits);
    const b = (await scoreWithOrtNode(contrib, rows, 0)).map((s) => s.logits);
    expect(relError(a, b)).toBeLessThan(1e-6);
  });
});
