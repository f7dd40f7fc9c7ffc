import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  configForModel,
  defaultConfig,
  FIELDS,
  resolveConfig,
  withField,
} from '../../src/train/config.ts';
import { learningRate } from '../../src/train/schedule.ts';

describe('run config', () => {
  it('defaults to the paper’s settings', () => {
    const config = defaultConfig();
    expect(config.lora).toEqual({
      r: 8,
      alpha: 16,
      dropout: 0.05,
      targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'],
    });
    expect(config.optimizer).toMatchObject({ lr: 1e-4, weightDecay: 0.05, maxGradNorm: 1 });
    expect(config.loss).toMatchObject({ kind: 'focal', gamma: 1, alpha: null });
    expect(config.schedule.kind).toBe('cosine');
    expect(config.batching).toMatchObject({ mode: 'packed', packLength: 2048, maxFunctionsPerPack: 200 });
  });

  it('documents every field', () => {
    for (const field of FIELDS) {
      expect(field.description.length, field.path).toBeGreaterThan(10);
      expect(field.check(field.default), field.path).toBeUndefined();
    }
  });

  it('fills defaults into a partial config', () => {
    const config = resolveConfig({ optimizer: { lr: 3e-4 }, batching: { mode: 'padded' } });
    expect(config.optimizer.lr).toBe(3e-4);
    expect(config.optimizer.weightDecay).toBe(0.05);
    expect(config.batching.mode).toBe('padded');
  });

  it('rejects bad fields one by one, naming the field, the value and what is accepted', () => {
    const cases: [unknown, RegExp][] = [
      [{ optimizer: { lr: -1 } }, /optimizer\.lr: got -1, expected a number in \(0, 1\]/],
      [{ lora: { r: 2.5 } }, /lora\.r: got 2\.5, expected an integer/],
      [
        { batching: { mode: 'zip' } },
        /batching\.mode: got "zip", expected one of "packed", "padded", "paper"/,
      ],
      [{ objective: 'regression' }, /objective: .*"cls", "ntp"/],
      [{ lora: { targets: ['attn.q_proj'] } }, /lora\.targets: .*attn\.c_attn.*wte/],
      [{ optimizer: { embeddingLr: 0 } }, /optimizer\.embeddingLr: got 0, expected a number in \(0, 1\]/],
      [{ loss: { gamma: 'high' } }, /loss\.gamma: got "high"/],
      [{ optimiser: { lr: 1 } }, /optimiser\.lr: unknown field/],
      [{ recompute: 'yes' }, /recompute: got "yes", expected true or false/],
      [[], /expected a JSON object/],
    ];
    for (const [partial, message] of cases) {
      const error = (() => {
        try {
          resolveConfig(partial);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toMatch(message);
    }
  });

  it('takes the token embedding as a LoRA target, with its own learning rate or lr', () => {
    const config = resolveConfig({
      lora: { targets: ['attn.c_attn', 'wte'] },
      optimizer: { embeddingLr: 0.03 },
    });
    expect(config.lora.targets).toEqual(['attn.c_attn', 'wte']);
    expect(config.optimizer.embeddingLr).toBe(0.03);
    expect(resolveConfig({}).optimizer.embeddingLr).toBeNull();
    expect(resolveConfig({}).lora.targets).not.toContain('wte'); // the paper adapts the four linears only
  });

  it('reports every wrong field at once', () => {
    expect(() => resolveConfig({ epochs: 0, seed: -1 })).toThrow(/epochs: .*; seed: /);
  });

  it('layers a model preset’s defaults under what the user sets', () => {
    const preset = { optimizer: { lr: 2e-3 }, batching: { packLength: 1024 } };
    const config = configForModel(preset, { batching: { mode: 'padded' }, epochs: 2 });
    expect(config.optimizer.lr).toBe(2e-3);
    expect(config.optimizer.weightDecay).toBe(0.05);
    expect(config.batching).toMatchObject({ packLength: 1024, mode: 'padded' });
    expect(configForModel(preset, { optimizer: { lr: 5e-4 } }).optimizer.lr).toBe(5e-4);
    expect(() => configForModel({ optimizer: { lr: 'fast' } })).toThrow(/optimizer\.lr/);
  });

  it('changes one field with validation', () => {
    const config = withField(defaultConfig(), 'loss.gamma', 2);
    expect(config.loss.gamma).toBe(2);
    expect(() => withField(config, 'loss.gamma', -1)).toThrow(ConfigError);
  });
});

describe('learning-rate schedule', () => {
  const schedule = { kind: 'cosine' as const, warmupRatio: 0.1 };
  it('warms up linearly, then follows a half cosine to zero', () => {
    expect(learningRate(schedule, 1, 0, 100)).toBe(0);
    expect(learningRate(schedule, 1, 5, 100)).toBeCloseTo(0.5, 12);
    expect(learningRate(schedule, 1, 10, 100)).toBeCloseTo(1, 12);
    expect(learningRate(schedule, 1, 55, 100)).toBeCloseTo(0.5, 12);
    expect(learningRate(schedule, 1, 100, 100)).toBeCloseTo(0, 12);
  });
  it('supports linear and constant decay', () => {
    expect(learningRate({ kind: 'linear', warmupRatio: 0 }, 2, 25, 100)).toBeCloseTo(1.5, 12);
    expect(learningRate({ kind: 'constant', warmupRatio: 0 }, 2, 99, 100)).toBe(2);
  });
});
