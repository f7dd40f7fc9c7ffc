import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeDecoder } from '../../src/engine/model/decoder.ts';
import {
  checkFit,
  DEFAULT_TRAINING_SHAPE,
  findPreset,
  modelFacts,
  PRESETS,
  presetMemory,
  presetParameterCount,
  presetShape,
} from '../../src/io/presets.ts';
import { DEMO_DIR } from './helpers/fixtures.ts';

const GiB = 1024 ** 3;

describe('presets', () => {
  it('lists the known models with their shapes and gated flag', () => {
    expect(PRESETS.map((p) => p.id)).toEqual([
      'demo',
      'bigcode/tiny_starcoder_py',
      'WizardLMTeam/WizardCoder-1B-V1.0',
      'WizardLMTeam/WizardCoder-3B-V1.0',
      'WizardLMTeam/WizardCoder-15B-V1.0',
      'bigcode/starcoderbase-1b',
      'bigcode/gpt_bigcode-santacoder',
      'Qwen/Qwen2.5-Coder-0.5B',
      'Qwen/Qwen2.5-Coder-1.5B',
      'Qwen/Qwen2.5-Coder-3B',
      'Qwen/Qwen2.5-Coder-7B',
      'deepseek-ai/deepseek-coder-1.3b-base',
      'codellama/CodeLlama-7b-hf',
      'WizardLMTeam/WizardCoder-Python-7B-V1.0',
      'bigcode/starcoder2-3b',
      'bigcode/starcoder2-7b',
      'bigcode/starcoder2-15b',
    ]);
    expect(PRESETS.filter((p) => p.gated).map((p) => p.id)).toEqual(['bigcode/starcoderbase-1b']);
    expect(findPreset('WizardLMTeam/WizardCoder-3B-V1.0')!.config).toMatchObject({
      n_layer: 36,
      n_embd: 2816,
      n_head: 22,
    });
  });

  it('the demo preset matches the committed demo config.json', () => {
    const c = JSON.parse(readFileSync(join(DEMO_DIR, 'config.json'), 'utf8'));
    const p = findPreset('demo')!;
    for (const [k, v] of Object.entries(p.config)) expect(c[k], k).toEqual(v);
    for (const f of p.staticFiles!) expect(() => readFileSync(join(DEMO_DIR, f))).not.toThrow();
  });

  it('parameter counts match the published model sizes', () => {
    const billions = (id: string) => presetParameterCount(findPreset(id)!) / 1e9;
    expect(billions('bigcode/tiny_starcoder_py')).toBeCloseTo(0.164, 2);
    expect(billions('WizardLMTeam/WizardCoder-1B-V1.0')).toBeCloseTo(1.14, 1);
    expect(billions('WizardLMTeam/WizardCoder-3B-V1.0')).toBeCloseTo(3.0, 0);
    expect(billions('WizardLMTeam/WizardCoder-15B-V1.0')).toBeCloseTo(15.5, 0);
    expect(billions('bigcode/gpt_bigcode-santacoder')).toBeCloseTo(1.12, 1);
  });

  // The sizes each model card (or the parameter count of its safetensors) publishes; within 2 %.
  const PUBLISHED: Record<string, number> = {
    'Qwen/Qwen2.5-Coder-0.5B': 0.49e9,
    'Qwen/Qwen2.5-Coder-1.5B': 1.54e9,
    'Qwen/Qwen2.5-Coder-3B': 3.09e9,
    'Qwen/Qwen2.5-Coder-7B': 7.61e9, // safetensors: 7,615,616,512
    'deepseek-ai/deepseek-coder-1.3b-base': 1.35e9,
    'codellama/CodeLlama-7b-hf': 6.74e9,
    'WizardLMTeam/WizardCoder-Python-7B-V1.0': 6.74e9,
    'bigcode/starcoder2-3b': 3.03e9,
    'bigcode/starcoder2-7b': 7.17e9,
    'bigcode/starcoder2-15b': 15.96e9, // safetensors: 15,957,889,024 (its LM head is not tied)
  };

  it('Llama-family parameter counts are the published sizes (within 2 %)', () => {
    for (const [id, published] of Object.entries(PUBLISHED)) {
      const count = presetParameterCount(findPreset(id)!);
      expect(Math.abs(count - published) / published, `${id}: ${count}`).toBeLessThan(0.02);
    }
    // Exact where the checkpoints' safetensors metadata gives the count.
    expect(presetParameterCount(findPreset('Qwen/Qwen2.5-Coder-7B')!)).toBe(7_615_616_512);
    expect(presetParameterCount(findPreset('bigcode/starcoder2-15b')!)).toBe(15_957_889_024);
  });

  it('every preset config passes describeDecoder, with its family and shape', () => {
    const family = (id: string) => describeDecoder(findPreset(id)!.config).family;
    for (const p of PRESETS) expect(() => describeDecoder(p.config), p.id).not.toThrow();
    expect(PRESETS.map((p) => modelFacts(p.config).familyLabel)).toEqual([
      ...Array(7).fill('GPT-BigCode'),
      ...Array(4).fill('Qwen2'),
      ...Array(3).fill('Llama'),
      ...Array(3).fill('StarCoder2'),
    ]);
    expect(family('Qwen/Qwen2.5-Coder-1.5B')).toBe('qwen2');
    expect(family('codellama/CodeLlama-7b-hf')).toBe('llama');
    expect(family('bigcode/starcoder2-7b')).toBe('starcoder2');

    const facts = (id: string) => modelFacts(findPreset(id)!.config);
    // Qwen2.5-Coder: tied heads but 7B's; GQA.
    expect(facts('Qwen/Qwen2.5-Coder-0.5B')).toMatchObject({
      layers: 24,
      width: 896,
      heads: 14,
      kvHeads: 2,
      headDim: 64,
      context: 32768,
      tiedHead: true,
      mlp: 'swiglu',
      norm: 'rmsnorm',
      rope: { theta: 1e6, scaling: 1 },
      slidingWindow: null,
    });
    expect(facts('Qwen/Qwen2.5-Coder-3B').tiedHead).toBe(true);
    expect(facts('Qwen/Qwen2.5-Coder-7B')).toMatchObject({ kvHeads: 4, vocab: 152064, tiedHead: false });
    // DeepSeek-Coder: linear RoPE scaling ×4, multi-head.
    expect(facts('deepseek-ai/deepseek-coder-1.3b-base')).toMatchObject({
      heads: 16,
      kvHeads: 16,
      context: 16384,
      tiedHead: false,
      rope: { theta: 1e5, scaling: 4 },
    });
    expect(facts('codellama/CodeLlama-7b-hf')).toMatchObject({
      vocab: 32016,
      rope: { theta: 1e6, scaling: 1 },
    });
    expect(facts('WizardLMTeam/WizardCoder-Python-7B-V1.0')).toMatchObject({ vocab: 32001, layers: 32 });
    // StarCoder2: LayerNorm, GELU MLP with biases, the 4096-key window; 15B alone untied.
    expect(facts('bigcode/starcoder2-3b')).toMatchObject({
      layers: 30,
      heads: 24,
      kvHeads: 2,
      mlp: 'gelu',
      norm: 'layernorm',
      slidingWindow: 4096,
      tiedHead: true,
      rope: { theta: 999999.4420358813, scaling: 1 },
    });
    expect(facts('bigcode/starcoder2-15b')).toMatchObject({ kvHeads: 4, tiedHead: false });
    expect(describeDecoder(findPreset('bigcode/starcoder2-3b')!.config).blocks[0].attention.output.bias).toBe(
      true,
    );
    // GPT-BigCode: multi-query, learned positions.
    expect(facts('WizardLMTeam/WizardCoder-1B-V1.0')).toMatchObject({
      family: 'gpt_bigcode',
      kvHeads: 1,
      positions: 'learned',
      tiedHead: true,
    });
  });

  it('Llama-family presets default to LoRA on every block linear of their family', () => {
    for (const p of PRESETS.filter((p) => modelFacts(p.config).family !== 'gpt_bigcode')) {
      const targets = modelFacts(p.config).loraTargets;
      expect(presetShape(p).loraTargets, p.id).toEqual(targets.filter((t) => t !== 'wte'));
      expect(targets).toContain('wte');
    }
    expect(presetShape(findPreset('Qwen/Qwen2.5-Coder-0.5B')!).loraTargets).toEqual([
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'self_attn.o_proj',
      'mlp.gate_proj',
      'mlp.up_proj',
      'mlp.down_proj',
    ]);
    expect(presetShape(findPreset('bigcode/starcoder2-3b')!).loraTargets).toContain('mlp.c_fc');
    // GPT-BigCode presets keep the paper's default (every linear, planned without naming them).
    expect(presetShape(findPreset('WizardLMTeam/WizardCoder-1B-V1.0'))).toEqual(DEFAULT_TRAINING_SHAPE);
    expect(presetShape(findPreset('demo'))).toMatchObject({
      packLength: 1024,
      loraTargets: expect.any(Array),
    });
  });

  it('every preset has a memory plan at its default run settings', () => {
    for (const p of PRESETS) {
      const m = presetMemory(p);
      for (const f of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
        expect(m[f].total, `${p.id} ${f}`).toBe(
          m[f].weights + m[f].trainable + m[f].activations + m[f].workspace,
        );
        expect(m[f].trainableParams, p.id).toBeGreaterThan(0);
      }
      expect(m.q4_0.weights, p.id).toBeLessThan(m.f32.weights);
    }
    // The LoRA of Qwen2.5-Coder-0.5B on its 7 linears at r 8: 24 layers × 8 × Σ(in + out), plus the head.
    const qwen = presetMemory(findPreset('Qwen/Qwen2.5-Coder-0.5B')!).q8_0;
    const perLayer = 8 * ((896 + 896) * 2 + (896 + 128) * 2 + 2 * (896 + 4864) + (4864 + 896));
    expect(qwen.trainableParams).toBe(24 * perLayer + 2 * 896);
  });

  it('memory figures shrink with the weight format', () => {
    const m = presetMemory(findPreset('WizardLMTeam/WizardCoder-1B-V1.0')!);
    expect(m.f32.weights).toBeGreaterThan(m.f16.weights);
    expect(m.f16.weights).toBeGreaterThan(m.q8_0.weights);
    expect(m.q8_0.weights).toBeGreaterThan(m.q4_0.weights);
  });

  it('checkFit suggests q4_0 or a smaller model when a choice does not fit', () => {
    const budget = { memoryBytes: 2 * GiB, maxStorageBufferBindingSize: 1 * GiB, maxBufferSize: 2 * GiB };
    const oneB = findPreset('WizardLMTeam/WizardCoder-1B-V1.0');
    const f32 = checkFit(oneB, 'f32', budget);
    expect(f32.fits).toBe(false);
    expect(f32.suggestions).toContain('use q4_0 weights');
    expect(checkFit(oneB, 'q4_0', budget)).toMatchObject({ fits: true, suggestions: [] });
    const big = checkFit(findPreset('WizardLMTeam/WizardCoder-15B-V1.0'), 'q4_0', budget);
    expect(big.fits).toBe(false);
    expect(big.suggestions.some((s) => s.startsWith('use a smaller model such as'))).toBe(true);
    expect(checkFit(findPreset('demo'), 'f32', budget).fits).toBe(true);
  });

  it('checks the Llama-family presets the same way, across families', () => {
    const budget = { memoryBytes: 2 * GiB, maxStorageBufferBindingSize: 1 * GiB, maxBufferSize: 2 * GiB };
    const qwen05 = findPreset('Qwen/Qwen2.5-Coder-0.5B')!;
    expect(checkFit(qwen05, 'q8_0', budget)).toMatchObject({ fits: true, suggestions: [] });
    const qwen15 = findPreset('Qwen/Qwen2.5-Coder-1.5B')!;
    const f16 = checkFit(qwen15, 'f16', budget);
    expect(f16.fits).toBe(false);
    expect(f16.suggestions).toContain('use q4_0 weights');
    // A 15B model on 2 GiB: a smaller model of any family, planned with its own LoRA targets.
    const sc15 = checkFit(findPreset('bigcode/starcoder2-15b')!, 'q4_0', budget);
    expect(sc15.fits).toBe(false);
    const smaller = sc15.suggestions.find((s) => s.startsWith('use a smaller model such as '));
    expect(smaller).toBeDefined();
    const id = smaller!.slice('use a smaller model such as '.length);
    expect(presetMemory(findPreset(id)!).q4_0.total).toBeLessThanOrEqual(budget.memoryBytes);
    // The fit follows the shape: without recomputation a 2048-token pack of CodeLlama-7B needs about
    // 21 GiB (activations of 32 blocks), with it about 6.3.
    const seven = findPreset('codellama/CodeLlama-7b-hf')!;
    const eight = { memoryBytes: 8 * GiB, maxStorageBufferBindingSize: GiB, maxBufferSize: 2 * GiB };
    expect(checkFit(seven, 'q4_0', eight).fits).toBe(true);
    const shape = { ...presetShape(seven), packLength: 2048 };
    expect(checkFit(seven, 'q4_0', eight, shape).fits).toBe(true);
    const kept = checkFit(seven, 'q4_0', eight, { ...shape, recompute: false });
    expect(kept.fits).toBe(false);
    expect(kept.suggestions).toContain('turn on activation recomputation');
  });
});
