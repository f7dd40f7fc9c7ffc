import { describe, expect, it } from 'vitest';
import {
  baseParamSpecs,
  loraParamSpecs,
  numel,
  type GptBigCodeConfig,
  type LoraConfig,
} from '../../src/engine/model/config.ts';
import {
  erf,
  geluGradRef,
  geluRef,
  lossAndGradsRef,
  lossRef,
  loraNames,
  type ModelSpec,
  type Objective,
  type PackedBatch,
  type ParamMap,
} from '../../src/engine/reference/gptbigcode.ts';
import { Rng } from '../../src/engine/random.ts';

function randomParams(config: GptBigCodeConfig, lora: LoraConfig | null, seed: number): ParamMap {
  const rng = new Rng(seed);
  const params: ParamMap = new Map();
  for (const s of [...baseParamSpecs(config), ...(lora ? loraParamSpecs(config, lora) : [])]) {
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
  config: GptBigCodeConfig;
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

const cases: Case[] = [
  {
    name: 'MQA exact gelu, packed, focal γ=2 α=0.25',
    config: { ...base, multi_query: true, activation_function: 'gelu' },
    objective: 'cls',
    mode: 'packed',
    gamma: 2,
    alpha: 0.25,
  },
  {
    name: 'MHA tanh gelu, paper, focal γ=0.5',
    config: { ...base, multi_query: false, activation_function: 'gelu_pytorch_tanh' },
    objective: 'cls',
    mode: 'paper',
    gamma: 0.5,
    alpha: null,
  },
  {
    name: 'MHA exact gelu, packed, next-token (tied wte gets embedding + lm_head gradients)',
    config: { ...base, multi_query: false, activation_function: 'gelu' },
    objective: 'ntp',
    mode: 'packed',
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
      const spec: ModelSpec = { config: c.config, lora, mode: c.mode };
      const params = randomParams(c.config, lora, 42);
      const b = c.mode === 'paper' ? paperBatch : batch;
      const options = { objective: c.objective, focal: { gamma: c.gamma, alpha: c.alpha } };
      const { grads } = lossAndGradsRef(spec, params, b, options);
      const rng = new Rng(7);
      let checked = 0;
      let gradScale = 0;
      for (const g of grads.values()) for (const v of g) gradScale = Math.max(gradScale, Math.abs(v));
      for (const [name, p] of params) {
        if (c.objective === 'ntp' && name === 'score.weight') continue;
        // A few elements of every tensor: LoRA A/B, score, wte, wpe, norms, weights and biases.
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

  it('LoRA dropout (fixed masks of one step): backward matches finite differences; masks change per step', () => {
    const config = cases[0].config;
    const dropLora = { ...lora, dropout: 0.3 };
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
    expect(checked).toBe(48);
    const evalMode = lossRef({ ...spec, dropout: undefined }, params, batch, options);
    const otherStep = lossRef({ ...spec, dropout: { seed: 5, step: 3 } }, params, batch, options);
    expect(Math.abs(loss - evalMode)).toBeGreaterThan(1e-6);
    expect(Math.abs(loss - otherStep)).toBeGreaterThan(1e-6);
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

describe('activation functions', () => {
  it('erf matches known values to 1e-15', () => {
    const known: [number, number][] = [
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [3.5, 0.9999992569016276],
      [-1.3, -0.9340079449406524],
    ];
    for (const [x, v] of known) expect(Math.abs(erf(x) - v)).toBeLessThan(1e-15);
  });

  it('gelu derivatives match finite differences', () => {
    for (const kind of ['gelu', 'gelu_pytorch_tanh'] as const) {
      for (const x of [-4, -1.3, -0.2, 0, 0.7, 2.5, 5]) {
        const fd = (geluRef(x + 1e-6, kind) - geluRef(x - 1e-6, kind)) / 2e-6;
        expect(Math.abs(fd - geluGradRef(x, kind))).toBeLessThan(1e-8);
      }
    }
  });
});
