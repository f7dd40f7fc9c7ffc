import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  checkParams,
  loraScaling,
  numel,
  resolveConfig,
  type GptBigCodeConfig,
} from '../../src/engine/model/config.ts';
import { baseParamSpecs, loraParamSpecs, trainableSpecs } from '../../src/engine/model/decoder.ts';
import { planMemory, type WeightFormat } from '../../src/engine/model/memory-plan.ts';

const wizard1b: GptBigCodeConfig = {
  vocab_size: 49153,
  n_embd: 2048,
  n_layer: 24,
  n_head: 16,
  n_inner: 8192,
  n_positions: 8192,
  multi_query: true,
  activation_function: 'gelu',
  layer_norm_epsilon: 1e-5,
  pad_token_id: 49152,
  bos_token_id: 0,
  eos_token_id: 0,
};

const tiny: GptBigCodeConfig = {
  vocab_size: 61,
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  n_inner: null,
  n_positions: 48,
  multi_query: false,
  activation_function: 'gelu_pytorch_tanh',
  layer_norm_epsilon: 1e-5,
};

describe('GPT-BigCode config', () => {
  it('derives n_inner, head size and the c_attn width', () => {
    const mqa = resolveConfig(wizard1b);
    expect(mqa.headDim).toBe(128);
    expect(mqa.qkvDim).toBe(2048 + 256);
    expect(mqa.kvHeads).toBe(1);
    const mha = resolveConfig(tiny);
    expect(mha.n_inner).toBe(128);
    expect(mha.qkvDim).toBe(96);
    expect(mha.kvHeads).toBe(4);
  });

  it('reports every problem in one readable error', () => {
    const bad = {
      ...tiny,
      n_embd: 30,
      n_head: 4,
      activation_function: 'relu',
    } as unknown as GptBigCodeConfig;
    expect(() => resolveConfig(bad)).toThrow(ConfigError);
    expect(() => resolveConfig(bad)).toThrow(/activation_function must be one of gelu, gelu_pytorch_tanh/);
    expect(() => resolveConfig({ ...tiny, n_embd: 30 })).toThrow(
      /n_embd \(30\) must be divisible by n_head \(4\)/,
    );
    expect(() => resolveConfig({ ...tiny, n_layer: 0, layer_norm_epsilon: -1 })).toThrow(
      /n_layer must be a positive integer.*layer_norm_epsilon must be a positive number/,
    );
    expect(() => resolveConfig({ ...tiny, pad_token_id: 61 })).toThrow(/pad_token_id/);
  });

  it('names every Hugging Face parameter with its shape (1B: 1.1B values)', () => {
    const specs = baseParamSpecs(wizard1b);
    const byName = new Map(specs.map((s) => [s.name, s.shape]));
    expect(byName.get('transformer.wte.weight')).toEqual([49153, 2048]);
    expect(byName.get('transformer.h.23.attn.c_attn.weight')).toEqual([2304, 2048]);
    expect(byName.get('transformer.h.0.attn.c_attn.bias')).toEqual([2304]);
    expect(byName.get('transformer.h.5.mlp.c_fc.weight')).toEqual([8192, 2048]);
    expect(byName.get('transformer.h.5.mlp.c_proj.weight')).toEqual([2048, 8192]);
    expect(byName.get('transformer.ln_f.bias')).toEqual([2048]);
    expect(byName.get('score.weight')).toEqual([2, 2048]);
    expect(specs.length).toBe(2 + 24 * 12 + 2 + 1);
    const total = specs.reduce((a, s) => a + numel(s.shape), 0);
    expect(total).toBeGreaterThan(1.0e9);
    expect(total).toBeLessThan(1.3e9);
  });

  it('names LoRA adapters PEFT-style and validates the LoRA config', () => {
    const lora = { r: 4, alpha: 8, dropout: 0, targets: ['attn.c_attn' as const, 'mlp.c_proj' as const] };
    expect(loraScaling(lora)).toBe(2);
    const specs = loraParamSpecs(tiny, lora);
    expect(specs.map((s) => `${s.name}:${s.shape.join('x')}`).slice(0, 4)).toEqual([
      'transformer.h.0.attn.c_attn.lora_A.weight:4x32',
      'transformer.h.0.attn.c_attn.lora_B.weight:96x4',
      'transformer.h.0.mlp.c_proj.lora_A.weight:4x128',
      'transformer.h.0.mlp.c_proj.lora_B.weight:32x4',
    ]);
    expect(trainableSpecs(tiny, lora, 'lora').map((s) => s.name)).toContain('score.weight');
    expect(() => loraScaling({ ...lora, r: 0, targets: ['attn.q' as never] })).toThrow(
      /r must be a positive integer.*unknown target "attn.q"/,
    );
  });

  it('checks a parameter map against the specs', () => {
    const specs = baseParamSpecs(tiny);
    const params = new Map(specs.map((s) => [s.name, new Float32Array(numel(s.shape))]));
    expect(() => checkParams(specs, params)).not.toThrow();
    params.delete('transformer.ln_f.weight');
    params.set('transformer.h.1.mlp.c_fc.weight', new Float32Array(3));
    expect(() => checkParams(specs, params)).toThrow(
      /transformer.h.1.mlp.c_fc.weight has 3 values, expected \[128, 32\].*missing transformer.ln_f.weight/,
    );
  });
});

describe('memory plan', () => {
  const base = {
    config: wizard1b,
    loraRank: 8,
    packLength: 2048,
    packsPerStep: 1,
    recompute: true,
    trainable: 'lora' as const,
  };

  it('orders weight formats q4_0 < q8_0 < f16 < f32 and sizes 1B f16 at about 2.5 GB', () => {
    const formats: WeightFormat[] = ['q4_0', 'q8_0', 'f16', 'f32'];
    const w = formats.map((weightFormat) => planMemory({ ...base, weightFormat }).weights);
    for (let i = 1; i < w.length; i++) expect(w[i]).toBeGreaterThan(w[i - 1]);
    expect(w[2]).toBeGreaterThan(2.0e9);
    expect(w[2]).toBeLessThan(2.6e9);
    // q4_0 is 18 bytes per 32 weights: linears shrink ~3.6x against f16.
    expect(w[0]).toBeLessThan(0.45 * w[2]);
  });

  it('counts LoRA + head values, with gradient and Adam m, v at 12 bytes each', () => {
    const plan = planMemory({ ...base, weightFormat: 'q8_0' });
    // per layer r·(in+out): c_attn 8·(2048+2304), c_proj 8·4096, c_fc 8·10240, mlp c_proj 8·10240
    const perLayer = 8 * (2048 + 2304 + 4096 + 10240 + 10240);
    expect(plan.trainableParams).toBe(24 * perLayer + 2 * 2048);
    expect(plan.trainable).toBe(plan.trainableParams * 12);
    expect(plan.total).toBe(plan.weights + plan.trainable + plan.activations + plan.workspace);
  });

  it('recompute reduces activations; activations scale with tokens', () => {
    const full = planMemory({ ...base, weightFormat: 'q4_0', recompute: false });
    const ckpt = planMemory({ ...base, weightFormat: 'q4_0', recompute: true });
    expect(ckpt.activations).toBeLessThan(full.activations / 5);
    const two = planMemory({ ...base, weightFormat: 'q4_0', recompute: false, packsPerStep: 2 });
    expect(two.activations).toBe(2 * full.activations);
  });

  it('reports the largest binding (next-token logits dominate for ntp)', () => {
    const cls = planMemory({ ...base, weightFormat: 'f16' });
    expect(cls.largestBinding.what).toBe('transformer.wte.weight');
    const ntp = planMemory({ ...base, weightFormat: 'f16', objective: 'ntp' });
    expect(ntp.largestBinding.bytes).toBe(2048 * 49153 * 4);
  });

  it('full finetuning needs f32 weights and costs far more', () => {
    expect(() => planMemory({ ...base, weightFormat: 'q4_0', trainable: 'all' })).toThrow(
      /needs f32 weights/,
    );
    const all = planMemory({ ...base, weightFormat: 'f32', trainable: 'all' });
    const lora = planMemory({ ...base, weightFormat: 'f32' });
    expect(all.trainable).toBeGreaterThan(100 * lora.trainable);
    expect(() => planMemory({ ...base, weightFormat: 'f32', packLength: 9000 })).toThrow(
      /exceeds the model's n_positions/,
    );
  });
});
