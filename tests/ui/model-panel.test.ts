/**
 * The Model panel's known models, rendered to HTML without a browser (react-dom/server): every preset
 * with its family, architecture facts, parameter count and memory plan; a model that does not fit in
 * the chosen format cannot be loaded from the table; the loaded model's line works for every family.
 */
import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it, vi } from 'vitest';

vi.hoisted(() => {
  const items = new Map<string, string>();
  (globalThis as { localStorage?: unknown }).localStorage ??= {
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => void items.set(k, v),
    removeItem: (k: string) => void items.delete(k),
  };
});

import { checkFit, findPreset, modelFacts, PRESETS, type ModelPreset } from '../../src/io/presets.ts';
import { resolveConfig } from '../../src/train/config.ts';
import { architectureSummary, attentionKind } from '../../src/ui/modelFacts.ts';
import {
  ModelInfoLine,
  ModelPanel,
  PresetRow,
  presetTrainingShape,
} from '../../src/ui/panels/ModelPanel.tsx';

const GiB = 1024 ** 3;
const budget = (gib: number) => ({
  memoryBytes: gib * GiB,
  maxStorageBufferBindingSize: GiB,
  maxBufferSize: 2 * GiB,
});

function row(preset: ModelPreset, gib: number, format: 'f32' | 'f16' | 'q8_0' | 'q4_0' = 'q8_0') {
  const draft = resolveConfig({ batching: { packLength: 512 } });
  const html = renderToStaticMarkup(
    createElement(
      'table',
      null,
      createElement(
        'tbody',
        null,
        createElement(PresetRow, {
          preset,
          format,
          budget: budget(gib),
          shape: presetTrainingShape(draft, preset),
          onLoad: () => undefined,
          busy: false,
        }),
      ),
    ),
  );
  const cell = (cls: string) => new RegExp(`<td class="${cls}[^"]*"[^>]*>(.*?)</td>`).exec(html)?.[1];
  return {
    html,
    family: cell('family'),
    architecture: cell('architecture'),
    loadDisabled: /<button[^>]*disabled/.test(html),
  };
}

describe('architecture facts', () => {
  it('sum up each family’s shape in one line', () => {
    expect(architectureSummary(modelFacts(findPreset('Qwen/Qwen2.5-Coder-0.5B')!.config))).toBe(
      '24 layers · width 896 · 14 heads / 2 KV (GQA) · context 32,768 · tied head · SwiGLU · RoPE θ 1e+6',
    );
    expect(architectureSummary(modelFacts(findPreset('deepseek-ai/deepseek-coder-1.3b-base')!.config))).toBe(
      '24 layers · width 2048 · 16 heads / 16 KV (MHA) · context 16,384 · own LM head · SwiGLU · RoPE θ 100000 ×4 linear',
    );
    expect(architectureSummary(modelFacts(findPreset('bigcode/starcoder2-15b')!.config))).toBe(
      '40 layers · width 6144 · 48 heads / 4 KV (GQA) · context 16,384 · own LM head · GELU MLP · RoPE θ 100000 · window 4,096',
    );
    expect(architectureSummary(modelFacts(findPreset('WizardLMTeam/WizardCoder-15B-V1.0').config))).toBe(
      '40 layers · width 6144 · 48 heads / 1 KV (MQA) · context 8,192 · tied head · GELU MLP · learned positions',
    );
    expect(attentionKind({ heads: 1, kvHeads: 1 })).toBe('MHA');
  });
});

describe('the known models table', () => {
  it('shows every preset’s family, architecture, parameters and memory plan', () => {
    for (const p of PRESETS) {
      const facts = modelFacts(p.config);
      const r = row(p, 64);
      expect(r.family, p.id).toBe(facts.familyLabel);
      expect(r.architecture, p.id).toBe(architectureSummary(facts));
      expect(r.html, p.id).toContain(`data-preset="${p.id}"`);
      expect(r.html, p.id).toMatch(/weights [\d.]+ [KMG]i?B · trained/);
    }
    expect(row(findPreset('bigcode/starcoder2-3b')!, 64).family).toBe('StarCoder2');
    expect(row(findPreset('codellama/CodeLlama-7b-hf')!, 64).family).toBe('Llama');
  });

  it('refuses to load what does not fit in the chosen format, and says what would', () => {
    const seven = findPreset('Qwen/Qwen2.5-Coder-7B')!;
    const small = row(seven, 4, 'q8_0');
    expect(small.loadDisabled).toBe(true);
    expect(small.html).toContain('too big in q8_0');
    expect(small.html).toMatch(/use a smaller model such as /);
    const big = row(seven, 24, 'q8_0');
    expect(big.loadDisabled).toBe(false);
    expect(big.html).toContain('fits in q8_0');
    // The same verdict as checkFit at the Train settings' shape.
    const draft = resolveConfig({ batching: { packLength: 512 } });
    expect(checkFit(seven, 'q8_0', budget(4), presetTrainingShape(draft, seven)).fits).toBe(false);
  });

  it('plans each preset with the draft’s targets carried to its family', () => {
    const draft = resolveConfig({ lora: { targets: ['attn.c_attn', 'wte'] } });
    expect(presetTrainingShape(draft, findPreset('Qwen/Qwen2.5-Coder-0.5B')!).loraTargets).toEqual([
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'wte',
    ]);
    expect(presetTrainingShape(draft, findPreset('demo')).loraTargets).toEqual(['attn.c_attn', 'wte']);
  });

  it('the whole panel lists every known model with its family', () => {
    const html = renderToStaticMarkup(createElement(ModelPanel));
    expect(html.match(/<tr data-preset=/g)).toHaveLength(PRESETS.length);
    for (const label of ['GPT-BigCode', 'Qwen2', 'Llama', 'StarCoder2'])
      expect(html).toContain(`>${label}</td>`);
    expect(html).toContain('<th scope="col">Family</th>');
    expect(html).toContain('<th scope="col">Architecture</th>');
  });
});

describe('the loaded model’s line', () => {
  it('names the family and the architecture of any config', () => {
    const qwen = findPreset('Qwen/Qwen2.5-Coder-1.5B')!.config;
    const html = renderToStaticMarkup(
      createElement(ModelInfoLine, {
        info: {
          name: 'Qwen/Qwen2.5-Coder-1.5B',
          config: qwen,
          parameters: 1_543_714_304,
          format: 'safetensors',
          tensors: 338,
          vocabSize: 151646,
        },
      }),
    );
    expect(html).toContain('<strong>Qwen/Qwen2.5-Coder-1.5B</strong> (Qwen2): 1.5B parameters');
    expect(html).toContain(architectureSummary(modelFacts(qwen)));
    expect(html).toContain('vocabulary 151646; 338 tensors (safetensors).');
  });
});
