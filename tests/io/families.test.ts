/**
 * Llama-family models through model IO (issue 17), on the CPU: config.json of llama / qwen2 /
 * starcoder2 parsed field by field (unsupported options named), the tiny checkpoints of
 * tests/fixtures/families/ loaded from safetensors (single and sharded, BF16 and F32) and from
 * llama.cpp GGUF (llama's permuted q/k rows restored), their tokenizers, and the float64 reference's
 * logits of the safetensors and GGUF loads within the q8_0 tolerance.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { baseParamSpecs, describeDecoder } from '../../src/engine/model/decoder.ts';
import type { LlamaFamily } from '../../src/engine/model/llama-family.ts';
import { forwardRef } from '../../src/engine/reference/model.ts';
import { configEosId, configSummary, parseConfig, parseConfigJson } from '../../src/io/config.ts';
import { MemoryCacheStore, WeightCache } from '../../src/io/cache.ts';
import { ModelIoError } from '../../src/io/errors.ts';
import { MemoryModelFiles } from '../../src/io/files.ts';
import { ggufToHfName, hfToGgufName, llamaPermutedRow, readGguf } from '../../src/io/gguf.ts';
import { inspectModel, loadModel } from '../../src/io/load.ts';
import { readSafetensorsHeader, writeSafetensors } from '../../src/io/safetensors.ts';
import { readTensorBytes, rowsCols } from '../../src/io/tensors.ts';
import { toF32 } from '../../src/io/convert.ts';
import { configForModel } from '../../src/train/config.ts';
import { codeFrame, codeTokensPerPack, ntpAnswers, prepareRunData } from '../../src/train/prepare.ts';
import { readBytes } from './helpers/fixtures.ts';
import { batchOf, FAMILIES, familyDir, familyFiles, JAVA, loadParams } from './helpers/families.ts';
import { relativeError } from '../helpers/relative-error.ts';

const configOf = (family: LlamaFamily): Record<string, unknown> =>
  JSON.parse(readFileSync(join(familyDir(family), 'config.json'), 'utf8')) as Record<string, unknown>;

function errorOf(work: () => unknown): ModelIoError {
  try {
    work();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelIoError);
    return e as ModelIoError;
  }
  throw new Error('expected an error');
}

describe('Llama-family config.json', () => {
  it('parses each fixture family into the engine’s description', () => {
    const expected = {
      llama: { family: 'llama', width: 64, layers: 2, heads: 4, kvHeads: 2, inner: 96, vocab: 512 },
      qwen2: { family: 'qwen2', width: 64, layers: 2, heads: 4, kvHeads: 2, inner: 128, vocab: 512 },
      starcoder2: {
        family: 'starcoder2',
        width: 64,
        layers: 2,
        heads: 4,
        kvHeads: 2,
        inner: 128,
        vocab: 480,
      },
    };
    for (const family of FAMILIES) {
      const config = parseConfig(configOf(family));
      expect(describeDecoder(config).family).toBe(family);
      expect(configSummary(config)).toMatchObject(expected[family]);
      const d = describeDecoder(config);
      const a = d.blocks[0].attention;
      if (family === 'llama') {
        expect(a.rope).toEqual({ theta: 10000, scaling: 2 });
        expect(d.lmHead).toBe('lm_head.weight');
        expect(d.loraTargets).toContain('mlp.gate_proj');
      }
      if (family === 'qwen2') {
        // use_sliding_window false: no window, however sliding_window is set.
        expect(a.slidingWindow).toBeNull();
        expect(d.lmHead).toBe(d.tokenEmbedding);
        expect(a.projections[0].bias).toBe(true);
        expect(a.output.bias).toBe(false);
      }
      if (family === 'starcoder2') {
        expect(a.slidingWindow).toBe(16);
        expect(d.blocks[0].norm1.kind).toBe('layernorm');
        expect(d.blocks[0].mlp.kind).toBe('gelu');
        expect(d.lmHead).toBe(d.tokenEmbedding);
      }
    }
  });

  it('reads Qwen2’s windows as Hugging Face does: max_window_layers ≥ layers means none, 0 means all', () => {
    const qwen = configOf('qwen2');
    const none = parseConfig({ ...qwen, use_sliding_window: true, max_window_layers: 2 });
    expect(describeDecoder(none).blocks[1].attention.slidingWindow).toBeNull();
    const all = parseConfig({ ...qwen, use_sliding_window: true, max_window_layers: 0, sliding_window: 8 });
    expect(describeDecoder(all).blocks.map((b) => b.attention.slidingWindow)).toEqual([8, 8]);
  });

  it('takes rope_scaling "default" as none and an eos_token_id list by its first id', () => {
    const llama = configOf('llama');
    const c = parseConfig({ ...llama, rope_scaling: { rope_type: 'default' }, eos_token_id: [2, 1] });
    expect(describeDecoder(c).blocks[0].attention.rope).toEqual({ theta: 10000, scaling: 1 });
    expect(configEosId(c)).toBe(2);
  });

  it.each([
    [
      'llama',
      { rope_scaling: { type: 'dynamic', factor: 2 } },
      'unsupported-config',
      /rope_scaling type "dynamic"/,
    ],
    ['llama', { rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'unsupported-config', /"llama3"/],
    ['llama', { hidden_act: 'gelu' }, 'unsupported-config', /hidden_act "gelu".*"silu"/],
    ['llama', { partial_rotary_factor: 0.5 }, 'unsupported-config', /partial_rotary_factor 0\.5/],
    [
      'llama',
      { quantization_config: { quant_method: 'gptq', bits: 4 } },
      'unsupported-config',
      /quantization_config \("gptq"/,
    ],
    [
      'qwen2',
      { use_sliding_window: true, max_window_layers: 1 },
      'unsupported-config',
      /use_sliding_window true with max_window_layers 1 < num_hidden_layers 2/,
    ],
    ['qwen2', { layer_types: ['full_attention', 'sliding_attention'] }, 'unsupported-config', /layer_types/],
    ['starcoder2', { hidden_act: 'silu' }, 'unsupported-config', /hidden_act "silu"/],
    ['starcoder2', { mlp_type: 'gated' }, 'unsupported-config', /mlp_type "gated"/],
    ['starcoder2', { norm_type: 'rms_norm' }, 'unsupported-config', /norm_type "rms_norm"/],
    ['llama', { num_key_value_heads: 3 }, 'bad-config', /num_key_value_heads \(3\)/],
    ['qwen2', { hidden_size: undefined }, 'bad-config', /hidden_size must be a positive integer/],
    ['starcoder2', { sliding_window: 0 }, 'bad-config', /sliding_window must be a positive integer/],
    ['llama', { rope_scaling: { type: 'linear', factor: 0.5 } }, 'bad-config', /rope_scaling\.factor/],
    ['llama', { eos_token_id: [2, 9999] }, 'bad-config', /eos_token_id lists \[9999\]/],
    ['qwen2', { model_type: 'mistral' }, 'unsupported-architecture', /"mistral"/],
  ] as const)('%s with %j: %s', (family, change, reason, message) => {
    const err = errorOf(() => parseConfig({ ...configOf(family), ...change }));
    expect(err.reason).toBe(reason);
    expect(err.message).toMatch(message);
    expect(err.hint).toBeTruthy();
  });

  it('names every unsupported field of a config in one error', () => {
    const err = errorOf(() =>
      parseConfigJson(
        JSON.stringify({
          ...configOf('llama'),
          hidden_act: 'relu',
          rope_scaling: { type: 'yarn', factor: 4 },
        }),
      ),
    );
    expect(err.message).toMatch(/hidden_act "relu"/);
    expect(err.message).toMatch(/rope_scaling type "yarn"/);
  });
});

describe('Llama-family checkpoints', () => {
  it.each(FAMILIES)('%s: safetensors hold every parameter under its Hugging Face name', async (family) => {
    const model = await inspectModel(familyFiles(family, 'safetensors'));
    expect(model.format).toBe('safetensors');
    const specs = baseParamSpecs(model.config, false);
    expect(model.tensors.map((t) => t.name).sort()).toEqual(specs.map((s) => s.name).sort());
    const dtype = family === 'starcoder2' ? 'F32' : 'BF16';
    expect(new Set(model.tensors.map((t) => t.sourceDtype))).toEqual(new Set([dtype]));
    if (family === 'starcoder2') {
      // Sharded as starcoder2-3b: both shards read through the index.
      expect(model.files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    }
    expect(model.tokenizer?.vocabSize).toBe(family === 'llama' ? 512 : family === 'qwen2' ? 470 : 480);
  });

  it('loads llama’s untied lm_head unless the objective is cls (then skipped, as the classifier replaces it)', async () => {
    const all = await inspectModel(familyFiles('llama', 'safetensors'));
    expect(all.tensors.map((t) => t.name)).toContain('lm_head.weight');
    const names: string[] = [];
    const cls = await loadModel(familyFiles('llama', 'safetensors'), {
      weightFormat: 'q8_0',
      objective: 'cls',
      sink: async (name) => void names.push(name),
    });
    expect(names).not.toContain('lm_head.weight');
    expect(cls.skipped).toEqual(['lm_head.weight']);
    expect(names).toHaveLength(all.tensors.length - 1);
    // Without it, a next-token load is refused by name.
    const files = familyFiles('llama', 'safetensors');
    const st = await readSafetensorsHeader(await files.open('model.safetensors'));
    const headless = new Map<string, Uint8Array>([
      ['config.json', readBytes(join(familyDir('llama'), 'config.json'))],
      [
        'model.safetensors',
        writeSafetensors(
          await Promise.all(
            st.tensors
              .filter((t) => t.name !== 'lm_head.weight')
              .map(async (t) => ({
                name: t.name,
                dtype: 'BF16' as const,
                shape: t.shape,
                data: await readTensorBytes(t),
              })),
          ),
        ),
      ],
    ]);
    await expect(
      loadModel(new MemoryModelFiles(headless), {
        weightFormat: 'f32',
        objective: 'ntp',
        sink: async () => {},
      }),
    ).rejects.toMatchObject({ reason: 'missing-tensor', message: expect.stringMatching(/lm_head\.weight/) });
    // …and a classification load does not need it.
    const ok = await loadModel(new MemoryModelFiles(headless), {
      weightFormat: 'f32',
      objective: 'cls',
      sink: async () => {},
    });
    expect(ok.tensors).toHaveLength(all.tensors.length - 1);
  });

  it('a cls load fills the weight cache with llama’s LM head too: a later next-token load is a complete hit', async () => {
    const cache = new WeightCache(new MemoryCacheStore());
    const names = async (objective: 'cls' | 'ntp') => {
      const got: string[] = [];
      const model = await loadModel(familyFiles('llama', 'safetensors'), {
        weightFormat: 'q8_0',
        objective,
        cache,
        sink: async (name) => void got.push(name),
      });
      return { got, cache: model.cache };
    };
    const cls = await names('cls');
    expect(cls.cache).toBe('miss');
    expect(cls.got).not.toContain('lm_head.weight');
    const ntp = await names('ntp');
    expect(ntp.cache).toBe('hit');
    expect(ntp.got).toContain('lm_head.weight');
    expect(ntp.got).toHaveLength(cls.got.length + 1);
    expect((await names('cls')).got.sort()).toEqual(cls.got.sort());
  });

  it('reads a bare LlamaModel checkpoint (names without "model.") and ignores rotary inv_freq buffers', async () => {
    const files = familyFiles('qwen2', 'safetensors');
    const st = await readSafetensorsHeader(await files.open('model.safetensors'));
    const entries = await Promise.all(
      st.tensors.map(async (t) => ({
        name: t.name.replace(/^model\./, ''),
        dtype: 'BF16' as const,
        shape: t.shape,
        data: await readTensorBytes(t),
      })),
    );
    entries.push({
      name: 'layers.0.self_attn.rotary_emb.inv_freq',
      dtype: 'BF16',
      shape: [8],
      data: new Uint8Array(16),
    });
    const bare = new Map<string, Uint8Array>([
      ['config.json', readBytes(join(familyDir('qwen2'), 'config.json'))],
      ['model.safetensors', writeSafetensors(entries)],
    ]);
    const model = await inspectModel(new MemoryModelFiles(bare));
    expect(model.tensors.map((t) => t.name).sort()).toEqual(st.tensors.map((t) => t.name).sort());
    expect(model.skipped).toEqual(['model.layers.0.self_attn.rotary_emb.inv_freq']);
  });

  it('names a tensor of another family and a wrong shape', async () => {
    const files = familyFiles('qwen2', 'safetensors');
    const st = await readSafetensorsHeader(await files.open('model.safetensors'));
    const build = async (
      rename: (n: string) => string,
      shape?: (t: { name: string; shape: number[] }) => number[],
    ) =>
      new MemoryModelFiles(
        new Map<string, Uint8Array>([
          ['config.json', readBytes(join(familyDir('qwen2'), 'config.json'))],
          [
            'model.safetensors',
            writeSafetensors(
              await Promise.all(
                st.tensors.map(async (t) => {
                  const s = shape?.(t) ?? t.shape;
                  const data = await readTensorBytes(t);
                  return { name: rename(t.name), dtype: 'BF16' as const, shape: s, data };
                }),
              ),
            ),
          ],
        ]),
      );
    const wrongName = await build((n) => n.replace('mlp.gate_proj', 'mlp.c_fc'));
    await expect(inspectModel(wrongName)).rejects.toMatchObject({
      reason: 'unexpected-tensor',
      message: expect.stringMatching(
        /mlp\.c_fc\.weight" is not a Qwen2 parameter for this config \(2 layers\)/,
      ),
    });
    const wrongShape = await build(
      (n) => n,
      (t) => (t.name === 'model.layers.1.self_attn.k_proj.weight' ? [16, 128] : t.shape),
    );
    await expect(inspectModel(wrongShape)).rejects.toMatchObject({ reason: 'shape-mismatch' });
  });
});

describe('Llama-family GGUF (llama.cpp)', () => {
  it('maps llama.cpp names per architecture and back', () => {
    const cases: [Parameters<typeof ggufToHfName>[1], string, string][] = [
      ['llama', 'token_embd.weight', 'model.embed_tokens.weight'],
      ['llama', 'output_norm.weight', 'model.norm.weight'],
      ['llama', 'output.weight', 'lm_head.weight'],
      ['llama', 'blk.1.attn_norm.weight', 'model.layers.1.input_layernorm.weight'],
      ['llama', 'blk.1.attn_q.weight', 'model.layers.1.self_attn.q_proj.weight'],
      ['qwen2', 'blk.0.attn_k.bias', 'model.layers.0.self_attn.k_proj.bias'],
      ['qwen2', 'blk.0.attn_output.weight', 'model.layers.0.self_attn.o_proj.weight'],
      ['llama', 'blk.0.ffn_norm.weight', 'model.layers.0.post_attention_layernorm.weight'],
      ['llama', 'blk.0.ffn_gate.weight', 'model.layers.0.mlp.gate_proj.weight'],
      ['qwen2', 'blk.0.ffn_up.weight', 'model.layers.0.mlp.up_proj.weight'],
      ['qwen2', 'blk.0.ffn_down.weight', 'model.layers.0.mlp.down_proj.weight'],
      ['starcoder2', 'blk.0.ffn_up.bias', 'model.layers.0.mlp.c_fc.bias'],
      ['starcoder2', 'blk.0.ffn_down.weight', 'model.layers.0.mlp.c_proj.weight'],
      ['starcoder2', 'output_norm.bias', 'model.norm.bias'],
    ];
    for (const [arch, g, h] of cases) {
      expect(ggufToHfName(g, arch)).toBe(h);
      expect(hfToGgufName(h, arch)).toBe(g);
    }
    expect(ggufToHfName('blk.0.ffn_gate.weight', 'starcoder2')).toBeUndefined();
    expect(ggufToHfName('blk.0.attn_qkv.weight', 'llama')).toBeUndefined();
  });

  it('undoes the converter’s q/k permutation (LlamaModel.permute interleaves each head’s rotary halves)', () => {
    // convert_hf_to_gguf.py: w.reshape(n_head, 2, hd/2, …).swapaxes(1, 2) — head of 4 rows: HF [0 1 | 2 3]
    // is stored [0 2 1 3]; HF row r is GGUF row llamaPermutedRow(r).
    const permute = (rows: number[], heads: number) => {
      const hd = rows.length / heads;
      return Array.from({ length: rows.length }, (_, g) => {
        const h = Math.floor(g / hd);
        const i = Math.floor((g % hd) / 2);
        const s = g % 2;
        return rows[h * hd + s * (hd / 2) + i];
      });
    };
    const hf = Array.from({ length: 16 }, (_, i) => i);
    for (const heads of [1, 2, 4]) {
      const gguf = permute(hf, heads);
      expect(hf.map((_, r) => gguf[llamaPermutedRow(r, 16, heads)])).toEqual(hf);
    }
    expect(permute([0, 1, 2, 3], 1)).toEqual([0, 2, 1, 3]);
  });

  it.each(FAMILIES)(
    '%s: metadata gives config.json’s model, and every tensor its safetensors values within Q8_0’s step',
    async (family) => {
      const files = familyFiles(family, 'gguf');
      const g = await readGguf(await files.open(`${family}-q8_0.gguf`));
      expect(g.arch).toBe(family);
      const fromJson = parseConfig(configOf(family));
      expect(configSummary(g.config)).toEqual(configSummary(fromJson));
      const dj = describeDecoder(fromJson);
      const dg = describeDecoder(g.config);
      // GGUF stores eps and rope theta as f32.
      const f32 = (v: number) => Math.fround(v);
      const { rope } = dj.blocks[0].attention;
      expect(dg.blocks[0].attention.rope).toEqual({ theta: f32(rope!.theta), scaling: rope!.scaling });
      expect(dg.blocks[0].attention.slidingWindow).toBe(dj.blocks[0].attention.slidingWindow);
      expect(dg.blocks[0].norm1).toEqual({ ...dj.blocks[0].norm1, eps: f32(dj.blocks[0].norm1.eps) });
      expect(dg.lmHead).toBe(dj.lmHead);
      expect(blockBiases(dg)).toEqual(blockBiases(dj));
      expect(g.config.eos_token_id).toBe(fromJson.eos_token_id);

      const st = await inspectModel(familyFiles(family, 'safetensors'));
      expect(g.tensors.map((t) => t.name).sort()).toEqual(st.tensors.map((t) => t.name).sort());
      const { params } = await loadParams(family, 'safetensors');
      for (const t of g.tensors) {
        const ref = params.get(t.name)!;
        const [rows, cols] = rowsCols(t.shape);
        const got = toF32(t.dtype, await readTensorBytes(t), rows, cols);
        expect(t.dtype).toBe(t.shape.length === 2 ? 'Q8_0' : 'F32');
        // Q8_0: half a step of the block's amax/127, plus the f16 rounding of the scale.
        for (let b = 0; b < got.length; b += 32) {
          let amax = 0;
          let err = 0;
          for (let i = b; i < Math.min(b + 32, got.length); i++) {
            amax = Math.max(amax, Math.abs(ref[i]));
            err = Math.max(err, Math.abs(got[i] - ref[i]));
          }
          const bound = t.dtype === 'Q8_0' ? amax / 254 + amax * 2 ** -10 : 0;
          if (err > bound + 1e-7) throw new Error(`${t.name} block ${b / 32}: error ${err} > ${bound}`);
        }
      }
    },
  );

  it('a GGUF alone (no config.json) loads with its own metadata as the config', async () => {
    const model = await inspectModel(familyFiles('llama', 'gguf', false));
    expect(model.format).toBe('gguf');
    expect(model.config).toMatchObject({
      model_type: 'llama',
      rope_scaling: { type: 'linear', factor: 2 },
      tie_word_embeddings: false,
      bos_token_id: 1,
      eos_token_id: 2,
    });
    expect(model.tensors).toHaveLength(baseParamSpecs(model.config, false).length);
  });

  it('refuses a GGUF whose metadata disagrees with config.json', async () => {
    const wrong = new Map<string, Uint8Array>([
      [
        'config.json',
        new TextEncoder().encode(JSON.stringify({ ...configOf('qwen2'), num_key_value_heads: 4 })),
      ],
      ['qwen2-q8_0.gguf', readBytes(join(familyDir('qwen2'), 'qwen2-q8_0.gguf'))],
    ]);
    await expect(inspectModel(new MemoryModelFiles(wrong))).rejects.toMatchObject({
      reason: 'shape-mismatch',
      message: expect.stringMatching(/num_key_value_heads \(2 vs 4\)/),
    });
  });
});

function blockBiases(d: ReturnType<typeof describeDecoder>): boolean[] {
  const b = d.blocks[0];
  const mlp = b.mlp.kind === 'gelu' ? [b.mlp.up, b.mlp.down] : [b.mlp.gate, b.mlp.up, b.mlp.down];
  return [...b.attention.projections, b.attention.output, ...mlp].map((l) => l.bias);
}

describe('Llama-family tokenizers', () => {
  it.each(FAMILIES)(
    '%s: loads, round-trips code byte for byte and names its end-of-text and pad tokens',
    async (family) => {
      const { tokenizer } = await inspectModel(familyFiles(family, 'safetensors'));
      const t = tokenizer!;
      const ids = t.encode(JAVA);
      expect(ids.length).toBeLessThan(JAVA.length);
      expect(t.decode(ids)).toBe(JAVA);
      const specials = {
        llama: { eos: '</s>', bos: '<s>', pad: '</s>' },
        qwen2: { eos: '<|endoftext|>', bos: '<|endoftext|>', pad: '<|endoftext|>' },
        starcoder2: { eos: '<|endoftext|>', bos: '<|endoftext|>', pad: '<|endoftext|>' },
      }[family];
      expect(t.eosId).toBe(t.tokenToId(specials.eos));
      expect(t.bosId).toBe(t.tokenToId(specials.bos));
      expect(t.padId).toBe(t.tokenToId(specials.pad));
      // Newlines and tabs outside Llama's pieces fall back to bytes.
      if (family === 'llama') expect(t.encode('\t')).toContain(t.tokenToId('<0x09>'));
      // What its post-processor puts before a text (and runs put before each function): Llama's BOS,
      // nothing for the byte-level BPEs.
      expect(t.prefixIds).toEqual(family === 'llama' ? [t.bosId] : []);
    },
  );

  it('frames each function of a run with the tokenizer’s prefix: Llama’s BOS, then the code', async () => {
    const { tokenizer } = await inspectModel(familyFiles('llama', 'safetensors'));
    const t = tokenizer!;
    const records = [
      { code: JAVA, label: 1 as const, split: 'train' as const },
      { code: 'int f() { return 1; }', label: 0 as const, split: 'train' as const },
    ];
    for (const objective of ['cls', 'ntp'] as const) {
      const { data } = prepareRunData(records, t, configForModel(undefined, { objective }), 64);
      const examples = [...data.train, ...data.validation, ...data.test];
      expect(examples).toHaveLength(2);
      const frame = codeFrame(t, objective);
      expect(frame.before[0]).toBe(t.bosId);
      for (const e of examples) {
        expect(e.tokens[0]).toBe(t.bosId);
        const code = e.tokens.slice(frame.before.length, e.tokens.length - frame.after.length);
        expect(code.length).toBeLessThanOrEqual(codeTokensPerPack(64, frame));
        if (e.exampleIndex === 1) expect(Array.from(code)).toEqual(t.encode(records[1].code));
      }
    }
  });

  it.each(FAMILIES)(
    '%s: the next-token answers " YES" / " NO" are single, distinct tokens after the prompt',
    async (family) => {
      const { tokenizer } = await inspectModel(familyFiles(family, 'safetensors'));
      const { yes, no } = ntpAnswers(tokenizer!);
      expect(yes).not.toBe(no);
      // Llama writes a lone " YES" as "▁" + "YES"; after the prompt it is the piece "▁YES".
      if (family === 'llama') {
        expect(yes).toBe(tokenizer!.tokenToId('▁YES'));
        expect(no).toBe(tokenizer!.tokenToId('▁NO'));
      }
    },
  );
});

describe('logits of the Llama-family checkpoints across formats (float64 reference)', () => {
  it.each(FAMILIES)(
    '%s: GGUF Q8_0 and safetensors quantized to q8_0 give the f32 logits within q8_0’s tolerance',
    async (family) => {
      const ref = await loadParams(family, 'safetensors', 'f32', 'ntp');
      const ids = ref.model.tokenizer!.encode(JAVA).slice(0, 48);
      const logits = (config: typeof ref.model.config, params: Map<string, Float64Array>) =>
        forwardRef({ config, lora: null, mode: 'packed' }, params, batchOf(ids), 'ntp').logits;
      const want = logits(ref.model.config, ref.params);
      let scale = 0;
      for (const v of want) scale = Math.max(scale, Math.abs(v));
      expect(scale).toBeGreaterThan(0.5);
      const err: Record<string, number> = {};
      for (const [prefer, wf] of [
        ['safetensors', 'q8_0'],
        ['gguf', 'f32'],
        ['gguf', 'q8_0'],
      ] as const) {
        const got = await loadParams(family, prefer, wf, 'ntp');
        expect(got.model.format).toBe(prefer);
        err[`${prefer}/${wf}`] = relativeError(logits(got.model.config, got.params), want);
      }
      console.log(
        family,
        Object.entries(err)
          .map(([k, e]) => `${k} ${e.toExponential(2)}`)
          .join(', '),
      );
      // The logits test's q8_0 bound is 2e-2 for the demo model (tests/io/logits.test.ts); these random
      // models measure 0.9e-2 to 1.9e-2 (their weights are unit-scale Gaussians, the GGUF's embeddings
      // and LM head are Q8_0 as well), so 3e-2. The GGUF's f32 load decodes the very blocks its q8_0
      // load passes through: the same logits.
      for (const e of Object.values(err)) expect(e).toBeLessThanOrEqual(3e-2);
      expect(err['gguf/q8_0']).toBe(err['gguf/f32']);
      if (family === 'llama') {
        // Left as llama.cpp stores them (rotary halves interleaved), q and k give other logits.
        const permuted = new Map(ref.params);
        const heads = { q_proj: 4, k_proj: 2 };
        for (const [name, values] of ref.params) {
          const m = /self_attn\.(q_proj|k_proj)\.weight$/.exec(name);
          if (!m) continue;
          const rows = values.length / 64;
          const out = new Float64Array(values.length);
          for (let r = 0; r < rows; r++) {
            const g = llamaPermutedRow(r, rows, heads[m[1] as 'q_proj' | 'k_proj']);
            out.set(values.subarray(r * 64, (r + 1) * 64), g * 64);
          }
          permuted.set(name, out);
        }
        expect(relativeError(logits(ref.model.config, permuted), want)).toBeGreaterThan(0.1);
      }
    },
  );
});
