import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, parseConfigJson, type ResolvedConfig } from '../../src/io/config.ts';
import { ModelIoError } from '../../src/io/errors.ts';
import { DEMO_DIR } from './helpers/fixtures.ts';

const wizard1b = {
  model_type: 'gpt_bigcode',
  architectures: ['GPTBigCodeForCausalLM'],
  activation_function: 'gelu',
  n_embd: 2048,
  n_head: 16,
  n_inner: 8192,
  n_layer: 24,
  n_positions: 8192,
  multi_query: true,
  layer_norm_epsilon: 1e-5,
  vocab_size: 49153,
  bos_token_id: 0,
  eos_token_id: 0,
  pad_token_id: 49152,
  scale_attn_weights: true,
  attention_softmax_in_fp32: true,
  torch_dtype: 'float16',
};

describe('config.json', () => {
  it('parses a WizardCoder config with derived sizes', () => {
    const c = parseConfigJson(JSON.stringify(wizard1b));
    expect(c).toMatchObject({ n_embd: 2048, n_inner: 8192, headDim: 128, kvHeads: 1, qkvDim: 2048 + 256 });
    expect(c.pad_token_id).toBe(49152);
  });

  it('n_inner null means 4·n_embd; multi_query false gives 3·n_embd qkv', () => {
    const c = parseConfig({ ...wizard1b, n_inner: null, multi_query: false }) as ResolvedConfig;
    expect(c.n_inner).toBe(4 * 2048);
    expect(c.qkvDim).toBe(3 * 2048);
    expect(c.kvHeads).toBe(16);
  });

  it('parses the committed demo config', () => {
    const c = parseConfigJson(readFileSync(join(DEMO_DIR, 'config.json'), 'utf8'));
    expect(c).toMatchObject({
      n_embd: 64,
      n_layer: 2,
      multi_query: true,
      activation_function: 'gelu_pytorch_tanh',
    });
  });

  it.each([
    ['not JSON', '{"model_type": ', 'bad-config', /not valid JSON/],
    ['an array', '[]', 'bad-config', /JSON object/],
    [
      'another architecture',
      JSON.stringify({ ...wizard1b, model_type: 'mistral' }),
      'unsupported-architecture',
      /"mistral"/,
    ],
    [
      'an unsupported activation',
      JSON.stringify({ ...wizard1b, activation_function: 'relu' }),
      'unsupported-config',
      /activation_function "relu"/,
    ],
    [
      'untied embeddings',
      JSON.stringify({ ...wizard1b, tie_word_embeddings: false }),
      'unsupported-config',
      /tie_word/,
    ],
    ['a missing n_embd', JSON.stringify({ ...wizard1b, n_embd: undefined }), 'bad-config', /n_embd/],
    [
      'n_embd not divisible by n_head',
      JSON.stringify({ ...wizard1b, n_head: 15 }),
      'bad-config',
      /divisible/,
    ],
    [
      'a pad id outside the vocab',
      JSON.stringify({ ...wizard1b, pad_token_id: 49153 }),
      'bad-config',
      /pad_token_id/,
    ],
  ])('rejects %s with a typed, named error', (_what, text, reason, message) => {
    let err: unknown;
    try {
      parseConfigJson(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelIoError);
    expect(err).toMatchObject({ reason });
    expect((err as Error).message).toMatch(message);
    expect((err as ModelIoError).hint).toBeTruthy();
  });
});
