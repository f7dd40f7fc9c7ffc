import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFit, findPreset, PRESETS, presetMemory, presetParameterCount } from '../../src/io/presets.ts';
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

  it('memory figures shrink with the weight format', () => {
    const m = presetMemory(findPreset('WizardLMTeam/WizardCoder-1B-V1.0')!);
    expect(m.f32.weights).toBeGreaterThan(m.f16.weights);
    expect(m.f16.weights).toBeGreaterThan(m.q8_0.weights);
    expect(m.q8_0.weights).toBeGreaterThan(m.q4_0.weights);
  });

  it('checkFit suggests q4_0 or a smaller model when a choice does not fit', () => {
    const budget = { memoryBytes: 2 * GiB, maxStorageBufferBindingSize: 1 * GiB, maxBufferSize: 2 * GiB };
    const oneB = findPreset('WizardLMTeam/WizardCoder-1B-V1.0')!;
    const f32 = checkFit(oneB, 'f32', budget);
    expect(f32.fits).toBe(false);
    expect(f32.suggestions).toContain('use q4_0 weights');
    expect(checkFit(oneB, 'q4_0', budget)).toMatchObject({ fits: true, suggestions: [] });
    const big = checkFit(findPreset('WizardLMTeam/WizardCoder-15B-V1.0')!, 'q4_0', budget);
    expect(big.fits).toBe(false);
    expect(big.suggestions.some((s) => s.startsWith('use a smaller model such as'))).toBe(true);
    expect(checkFit(findPreset('demo')!, 'f32', budget).fits).toBe(true);
  });
});
