import { describe, expect, it } from 'vitest';
import { numel, type LoraConfig } from '../../src/engine/model/config.ts';
import {
  baseParamSpecs,
  blockLinears,
  describeDecoder,
  loraParamSpecs,
  type ModelConfig,
} from '../../src/engine/model/decoder.ts';
import type { LlamaFamilyConfig } from '../../src/engine/model/llama-family.ts';
import {
  lossAndGradsRef,
  lossRef,
  loraNames,
  type ModelSpec,
  type Objective,
  type PackedBatch,
  type ParamMap,
} from '../../src/engine/reference/model.ts';
import { Rng } from '../../src/engine/random.ts';

/** Every parameter of the model with the objective's head (score for cls, an untied lm_head for ntp). */
function randomParams(
  config: ModelConfig,
  lora: LoraConfig | null,
  seed: number,
  objective: Objective = 'cls',
): ParamMap {
  const rng = new Rng(seed);
  const params: ParamMap = new Map();
  const base = baseParamSpecs(config, objective === 'cls');
  for (const s of [...base, ...(lora ? loraParamSpecs(config, lora) : [])]) {
    const v = new Float64Array(numel(s.shape));
    const isNormWeight = s.kind === 'norm' && s.name.endsWith('.weight');
    for (let i = 0; i < v.length; i++) v[i] = isNormWeight ? 1 + 0.2 * rng.normal() : 0.3 * rng.normal();
    params.set(s.name, v);
  }
  return params;
}

const batch: PackedBatch = {
  inputIds: [
    [3, 7, 1, 0, 9, 4, 4, 2, 0, 11],
    [5, 6, 0, 8, 1, 0, 12, 12, 12, 12],
  ],
  segmentIds: [
    [0, 0, 0, 0, 1, 1, 2, 2, 2, 2],
    [0, 0, 0, 1, 1, 1, -1, -1, -1, -1],
  ],
  positionIds: [
    [0, 1, 2, 3, 0, 1, 0, 1, 2, 3],
    [0, 1, 2, 0, 1, 2, 0, 0, 0, 0],
  ],
  functions: [
    { pack: 0, last: 2, label: 1, weight: 3 },
    { pack: 0, last: 4, label: 0, weight: 1 },
    { pack: 0, last: 8, label: 1, weight: 1 },
    { pack: 1, last: 1, label: 0, weight: 1 },
    { pack: 1, last: 4, label: 1, weight: 3 },
  ],
};

const paperBatch: PackedBatch = { ...batch, positionIds: batch.inputIds.map((row) => row.map((_, i) => i)) };

const lora: LoraConfig = {
  r: 2,
  alpha: 6,
  dropout: 0,
  targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'],
};

interface Case {
  name: string;
  config: ModelConfig;
  lora: LoraConfig | null;
  objective: Objective;
  mode: 'packed' | 'paper';
  gamma: number;
  alpha: number | null;
}

const base = {
  vocab_size: 13,
  n_embd: 8,
  n_layer: 2,
  n_head: 2,
  n_inner: 12,
  n_positions: 12,
  layer_norm_epsilon: 1e-5,
};

/** The Llama family at the batch's size: 4 query heads of 4, 2 K/V heads (GQA), two layers. */
const family = {
  vocab_size: 13,
  hidden_size: 16,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 12,
};
const llama: LlamaFamilyConfig = {
  ...family,
  model_type: 'llama',
  hidden_act: 'silu',
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
};
const qwen2: LlamaFamilyConfig = {
  ...family,
  model_type: 'qwen2',
  hidden_act: 'silu',
  rms_norm_eps: 1e-6,
  rope_theta: 1e6,
  tie_word_embeddings: true,
};
/** Sliding window 3: shorter than the 4-token functions of the batch (and than a paper pack). */
const starcoder2: LlamaFamilyConfig = {
  ...family,
  model_type: 'starcoder2',
  hidden_act: 'gelu_pytorch_tanh',
  norm_epsilon: 1e-5,
  use_bias: true,
  sliding_window: 3,
  rope_theta: 1e5,
};

const ATTENTION = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'] as const;

const cases: Case[] = [
  {
    name: 'MQA exact gelu, packed, focal γ=2 α=0.25',
    config: { ...base, multi_query: true, activation_function: 'gelu' },
    lora,
    objective: 'cls',
    mode: 'packed',
    gamma: 2,
    alpha: 0.25,
  },
  {
    name: 'MHA tanh gelu, paper, focal γ=0.5',
    config: { ...base, multi_query: false, activation_function: 'gelu_pytorch_tanh' },
    lora,
    objective: 'cls',
    mode: 'paper',
    gamma: 0.5,
    alpha: null,
  },
  {
    name: 'MHA exact gelu, packed, next-token (tied wte gets embedding + lm_head gradients)',
    config: { ...base, multi_query: false, activation_function: 'gelu' },
    lora,
    objective: 'ntp',
    mode: 'packed',
    gamma: 0,
    alpha: null,
  },
  {
    name: 'llama: GQA 4/2, RoPE, SwiGLU, untied head; LoRA on all 7 linears + wte; packed, focal γ=2 α=0.25',
    config: llama,
    lora: {
      r: 2,
      alpha: 6,
      dropout: 0,
      targets: [...ATTENTION, 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj', 'wte'],
    },
    objective: 'cls',
    mode: 'packed',
    gamma: 2,
    alpha: 0.25,
  },
  {
    name: 'llama: full finetuning, attention and MLP biases, linear RoPE scaling ×2; paper, next-token (untied lm_head)',
    config: { ...llama, attention_bias: true, mlp_bias: true, rope_scaling: { type: 'linear', factor: 2 } },
    lora: null,
    objective: 'ntp',
    mode: 'paper',
    gamma: 0,
    alpha: null,
  },
  {
    name: 'qwen2: q/k/v biases, tied head; LoRA on q, k, v, o, up, down + wte; packed, next-token',
    config: qwen2,
    lora: { r: 2, alpha: 4, dropout: 0, targets: [...ATTENTION, 'mlp.up_proj', 'mlp.down_proj', 'wte'] },
    objective: 'ntp',
    mode: 'packed',
    gamma: 0,
    alpha: null,
  },
  {
    name: 'qwen2: one K/V head (multi-query), full finetuning; paper, focal γ=1',
    config: { ...qwen2, num_key_value_heads: 1 },
    lora: null,
    objective: 'cls',
    mode: 'paper',
    gamma: 1,
    alpha: null,
  },
  {
    name: 'starcoder2: LayerNorm + bias, tanh-GELU c_fc/c_proj + biases, window 3; LoRA on all 6 linears + wte; packed, focal γ=1',
    config: starcoder2,
    lora: { r: 2, alpha: 3, dropout: 0, targets: [...ATTENTION, 'mlp.c_fc', 'mlp.c_proj', 'wte'] },
    objective: 'cls',
    mode: 'packed',
    gamma: 1,
    alpha: null,
  },
  {
    name: 'starcoder2: exact GELU, window 3, full finetuning; paper, next-token (tied embedding gets both gradients)',
    config: { ...starcoder2, hidden_act: 'gelu' },
    lora: null,
    objective: 'ntp',
    mode: 'paper',
    gamma: 0,
    alpha: null,
  },
];

/**
 * Central differences in float64 with h = 1e-5: truncation O(h²)·f''' ~ 1e-10 and rounding
 * ~1e-16/h ~ 1e-11, so analytic and numeric derivatives agree to ~1e-7 of the gradient scale; an
 * indexing or sign mistake is off by O(1).
 */
const H = 1e-5;
const TOL = 1e-6;

describe('explicit backward of the float64 reference vs central finite differences', () => {
  for (const c of cases) {
    it(c.name, () => {
      const spec: ModelSpec = { config: c.config, lora: c.lora, mode: c.mode };
      const params = randomParams(c.config, c.lora, 42, c.objective);
      const b = c.mode === 'paper' ? paperBatch : batch;
      const options = { objective: c.objective, focal: { gamma: c.gamma, alpha: c.alpha } };
      const { grads } = lossAndGradsRef(spec, params, b, options);
      const rng = new Rng(7);
      let checked = 0;
      let gradScale = 0;
      for (const g of grads.values()) for (const v of g) gradScale = Math.max(gradScale, Math.abs(v));
      for (const [name, p] of params) {
        // A few elements of every tensor: LoRA A/B, score, embeddings, lm_head, norms, weights and biases.
        const picks = new Set<number>([0, p.length - 1]);
        while (picks.size < Math.min(4, p.length)) picks.add(rng.int(p.length));
        for (const i of picks) {
          const saved = p[i];
          p[i] = saved + H;
          const up = lossRef(spec, params, b, options);
          p[i] = saved - H;
          const down = lossRef(spec, params, b, options);
          p[i] = saved;
          const numeric = (up - down) / (2 * H);
          const analytic = grads.get(name)![i];
          expect(Math.abs(numeric - analytic), `${name}[${i}]: ${analytic} vs ${numeric}`).toBeLessThan(
            TOL * gradScale,
          );
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(100);
      expect(gradScale).toBeGreaterThan(1e-3);
    });
  }

  for (const [name, config, targets] of [
    ['GPT-BigCode MQA', cases[0].config, lora.targets],
    ['llama GQA, 7 linears + wte (no dropout on the embedding adapter)', llama, cases[3].lora!.targets],
  ] as const) {
    it(`LoRA dropout (fixed masks of one step), ${name}: backward matches finite differences; masks change per step`, () => {
      const dropLora: LoraConfig = { ...lora, targets: [...targets], dropout: 0.3 };
      const spec: ModelSpec = { config, lora: dropLora, mode: 'packed', dropout: { seed: 5, step: 2 } };
      const params = randomParams(config, dropLora, 9);
      const options = { objective: 'cls' as const, focal: { gamma: 1, alpha: null } };
      const { grads, loss } = lossAndGradsRef(spec, params, batch, options);
      let checked = 0;
      for (const name of loraNames(spec)) {
        const p = params.get(name)!;
        for (const i of [0, p.length >> 1, p.length - 1]) {
          const saved = p[i];
          p[i] = saved + H;
          const up = lossRef(spec, params, batch, options);
          p[i] = saved - H;
          const down = lossRef(spec, params, batch, options);
          p[i] = saved;
          expect(Math.abs((up - down) / (2 * H) - grads.get(name)![i]), name).toBeLessThan(1e-7);
          checked++;
        }
      }
      expect(checked).toBe(3 * loraParamSpecs(config, dropLora).length);
      const evalMode = lossRef({ ...spec, dropout: undefined }, params, batch, options);
      const otherStep = lossRef({ ...spec, dropout: { seed: 5, step: 3 } }, params, batch, options);
      expect(Math.abs(loss - evalMode)).toBeGreaterThan(1e-6);
      expect(Math.abs(loss - otherStep)).toBeGreaterThan(1e-6);
    });
  }

  it("dropout masks are keyed by the description's sites: GPT-BigCode's layer·4 + target index", () => {
    const sites = (config: ModelConfig) =>
      describeDecoder(config).blocks.map((b) => blockLinears(b).map((l) => `${l.target}@${l.site}`));
    expect(sites(cases[0].config)).toEqual([
      ['attn.c_attn@0', 'attn.c_proj@1', 'mlp.c_fc@2', 'mlp.c_proj@3'],
      ['attn.c_attn@4', 'attn.c_proj@5', 'mlp.c_fc@6', 'mlp.c_proj@7'],
    ]);
    const llamaSites = sites(llama)
      .flat()
      .map((s) => Number(s.split('@')[1]));
    expect(llamaSites).toEqual([...llamaSites.keys()]);
  });

  it('LoRA B = 0 (PEFT init) still gives A zero and B non-zero gradients', () => {
    const config = cases[0].config;
    const spec: ModelSpec = { config, lora, mode: 'packed' };
    const params = randomParams(config, lora, 3);
    for (const [name, v] of params) if (name.includes('lora_B')) v.fill(0);
    const { grads } = lossAndGradsRef(spec, params, batch, {
      objective: 'cls',
      focal: { gamma: 1, alpha: null },
    });
    const aNorm = [...grads].filter(([n]) => n.includes('lora_A')).flatMap(([, g]) => [...g]);
    const bNorm = [...grads].filter(([n]) => n.includes('lora_B')).flatMap(([, g]) => [...g]);
    expect(Math.max(...aNorm.map(Math.abs))).toBe(0);
    expect(Math.max(...bNorm.map(Math.abs))).toBeGreaterThan(1e-4);
  });

  it("the token embedding's adapter (target wte): backward matches finite differences, for ids seen twice and once", () => {
    const config = cases[0].config;
    const embLora: LoraConfig = { ...lora, targets: ['mlp.c_fc', 'wte'] };
    const spec: ModelSpec = { config, lora: embLora, mode: 'packed' };
    const params = randomParams(config, embLora, 21);
    const options = { objective: 'cls' as const, focal: { gamma: 1, alpha: null } };
    const { grads } = lossAndGradsRef(spec, params, batch, options);
    const V = config.vocab_size;
    // A's columns of token 0 (four times in the batch), 3 (once) and 10 (absent: zero gradient)
    const columns = [0, 3, 10];
    let checked = 0;
    for (const name of ['transformer.wte.lora_embedding_A', 'transformer.wte.lora_embedding_B']) {
      const p = params.get(name)!;
      const indices = name.endsWith('_A')
        ? columns.flatMap((v) => [v, V + v])
        : [0, 1, p.length >> 1, p.length - 1];
      for (const i of indices) {
        const saved = p[i];
        p[i] = saved + H;
        const up = lossRef(spec, params, batch, options);
        p[i] = saved - H;
        const down = lossRef(spec, params, batch, options);
        p[i] = saved;
        expect(Math.abs((up - down) / (2 * H) - grads.get(name)![i]), `${name}[${i}]`).toBeLessThan(1e-7);
        checked++;
      }
    }
    expect(checked).toBe(10);
    expect(grads.get('transformer.wte.lora_embedding_A')![10]).toBe(0);
    expect(Math.abs(grads.get('transformer.wte.lora_embedding_A')![0])).toBeGreaterThan(1e-6);
  });
});
