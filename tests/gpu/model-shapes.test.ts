import { describe, expect, it } from 'vitest';
import { numel, type GptBigCodeConfig, type LoraConfig } from '../../src/engine/model/config.ts';
import { baseParamSpecs, loraParamSpecs } from '../../src/engine/model/decoder.ts';
import { DecoderGpu, type Objective } from '../../src/engine/model/decoder-gpu.ts';
import { TrainStep } from '../../src/engine/model/train-step.ts';
import {
  lossAndGradsRef,
  type AttentionMode,
  type PackedBatch,
  type ParamMap,
} from '../../src/engine/reference/model.ts';
import { Rng } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// Same reasoning as model.test.ts (f32 vs float64 through two blocks). Gradients get 1e-4: with 93-token
// causal attention the key gradient is a small difference of large sums (a shift shared by all keys
// has exactly zero gradient, Σ_k dS = 0 per query), so its f32 error grows with sequence length and
// head count — measured 4.1e-5 on layer 0's c_attn LoRA A, 3e-6 on layer 1, < 1e-5 everywhere else.
// A wrong index or mask is off by > 1e-2.
const FORWARD_TOL = 1e-5;
const GRAD_TOL = 1e-4;

function randomParams(config: GptBigCodeConfig, lora: LoraConfig, seed: number): ParamMap {
  const rng = new Rng(seed);
  const params: ParamMap = new Map();
  for (const s of [...baseParamSpecs(config), ...loraParamSpecs(config, lora)]) {
    const v = new Float64Array(numel(s.shape));
    const norm = s.kind === 'norm' && s.name.endsWith('.weight');
    const scale = s.kind === 'linear-weight' ? 1 / Math.sqrt(s.shape[1]) : 0.2;
    for (let i = 0; i < v.length; i++)
      v[i] = Math.fround(norm ? 1 + 0.1 * rng.normal() : scale * rng.normal());
    params.set(s.name, v);
  }
  return params;
}

/** Packs of random function lengths (each function's last token is followed by an EOS), right-padded. */
function randomBatch(rng: Rng, packs: number, L: number, vocab: number, mode: AttentionMode): PackedBatch {
  const batch: PackedBatch = { inputIds: [], segmentIds: [], positionIds: [], functions: [] };
  for (let b = 0; b < packs; b++) {
    const ids: number[] = [];
    const seg: number[] = [];
    const pos: number[] = [];
    let f = 0;
    while (ids.length < L - 3) {
      const len = Math.min(2 + rng.int(30), L - ids.length - 1);
      for (let i = 0; i < len; i++) {
        ids.push(1 + rng.int(vocab - 2));
        seg.push(f);
        pos.push(i);
      }
      batch.functions.push({ pack: b, last: ids.length - 1, label: rng.int(2), weight: rng.int(2) ? 3 : 1 });
      ids.push(0);
      seg.push(f);
      pos.push(len);
      f++;
    }
    while (ids.length < L) {
      ids.push(vocab - 1);
      seg.push(-1);
      pos.push(0);
    }
    batch.inputIds.push(ids);
    batch.segmentIds.push(seg);
    batch.positionIds.push(mode === 'paper' ? ids.map((_, i) => i) : pos);
  }
  return batch;
}

const configs: { name: string; config: GptBigCodeConfig; mode: AttentionMode; objective: Objective }[] = [
  {
    name: 'MHA, head_dim 24, n_inner 200, packs of 70, cls',
    config: {
      vocab_size: 257,
      n_embd: 96,
      n_layer: 2,
      n_head: 4,
      n_inner: 200,
      n_positions: 80,
      multi_query: false,
      activation_function: 'gelu_pytorch_tanh',
      layer_norm_epsilon: 1e-5,
    },
    mode: 'packed',
    objective: 'cls',
  },
  {
    name: 'MQA, 6 heads of 20, n_inner null (4·D), paper mode, next-token',
    config: {
      vocab_size: 131,
      n_embd: 120,
      n_layer: 2,
      n_head: 6,
      n_inner: null,
      n_positions: 100,
      multi_query: true,
      activation_function: 'gelu',
      layer_norm_epsilon: 1e-5,
    },
    mode: 'paper',
    objective: 'ntp',
  },
];

describe('GPU model vs float64 reference at awkward shapes', { timeout: 600_000 }, () => {
  for (const { name, config, mode, objective } of configs) {
    it(name, async () => {
      const ctx = gpu();
      const lora: LoraConfig = {
        r: 3,
        alpha: 12,
        dropout: 0,
        targets: ['attn.c_attn', 'mlp.c_fc', 'mlp.c_proj', 'wte'],
      };
      const params = randomParams(config, lora, 17);
      const rng = new Rng(23);
      const L = mode === 'paper' ? 93 : 70;
      const batch = randomBatch(rng, 2, L, config.vocab_size, mode);
      const focal = { gamma: 2, alpha: 0.25 };
      ctx.device.pushErrorScope('validation');
      const model = await DecoderGpu.create(
        ctx,
        { config, lora, mode, objective, trainable: 'lora' },
        params,
      );
      const step = await TrainStep.create(model, {
        packs: 2,
        packLength: L,
        maxFunctions: batch.functions.length,
      });
      step.setBatch(batch);
      if (objective === 'cls') step.setFocal(focal);
      await step.run();
      expect((await ctx.device.popErrorScope())?.message).toBeUndefined();
      const want = lossAndGradsRef({ config, lora, mode }, params, batch, { objective, focal });
      const loss = await step.readLoss();
      expect(Math.abs(loss - want.loss) / want.loss).toBeLessThan(FORWARD_TOL);
      if (objective === 'cls')
        expect(compare(await step.readClsLogits(), want.logits).maxRel).toBeLessThan(FORWARD_TOL);
      for (const n of model.trainableNames) {
        expect(compare(await model.readGrad(n), want.grads.get(n)!).maxRel, n).toBeLessThan(GRAD_TOL);
      }
      step.destroy();
      model.destroy();
    });
  }
});
