/**
 * The train layer on the Llama family (issue 17), on the CPU: run-config LoRA targets carried to the
 * model's own modules by role, the PEFT adapter's layout for llama / qwen2 / starcoder2 (keys,
 * target_modules, task type) and its import back, the initial trainables under the family's names,
 * and the next-token answers read in context.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LINEAR_TARGETS, type LoraTarget } from '../../src/engine/model/config.ts';
import { describeDecoder, loraParamSpecs, type ModelConfig } from '../../src/engine/model/decoder.ts';
import { parseConfig } from '../../src/io/config.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { ALL_LORA_TARGETS, ConfigError, resolveConfig } from '../../src/train/config.ts';
import { exportPeftAdapter, importPeftAdapter } from '../../src/train/export.ts';
import { initialTrainables } from '../../src/train/init.ts';
import { ntpAnswers, NTP_PROMPT } from '../../src/train/prepare.ts';
import { familyLoraTargets, peftTargetModules } from '../../src/train/targets.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const family = (name: string): ModelConfig =>
  parseConfig(JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/families', name, 'config.json'), 'utf8')));
const demo = (): ModelConfig =>
  parseConfig(JSON.parse(readFileSync(join(ROOT, 'public/models/demo/config.json'), 'utf8')));

describe('LoRA targets across families', () => {
  it('the run config accepts every family’s targets and still refuses unknown ones', () => {
    const llamaTargets = ['self_attn.q_proj', 'mlp.down_proj', 'wte'];
    expect(resolveConfig({ lora: { targets: llamaTargets } }).lora.targets).toEqual(llamaTargets);
    expect(ALL_LORA_TARGETS).toEqual(expect.arrayContaining([...LINEAR_TARGETS, 'self_attn.o_proj']));
    expect(() => resolveConfig({ lora: { targets: ['q_proj'] } })).toThrow(ConfigError);
  });

  it('carries GPT-BigCode’s names to the same roles of a Llama-family model, in the model’s order', () => {
    const all = [...LINEAR_TARGETS];
    expect(familyLoraTargets(all, family('llama'))).toEqual([
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'self_attn.o_proj',
      'mlp.gate_proj',
      'mlp.up_proj',
      'mlp.down_proj',
    ]);
    // StarCoder2 has c_fc / c_proj itself.
    expect(familyLoraTargets([...all, 'wte'], family('starcoder2'))).toEqual([
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'self_attn.o_proj',
      'mlp.c_fc',
      'mlp.c_proj',
      'wte',
    ]);
    expect(familyLoraTargets(['attn.c_attn'], family('qwen2'))).toEqual([
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
    ]);
    // A family's own names are taken as they are…
    expect(familyLoraTargets(['self_attn.v_proj', 'self_attn.q_proj'], family('llama'))).toEqual([
      'self_attn.q_proj',
      'self_attn.v_proj',
    ]);
    // …and the other way round onto GPT-BigCode.
    const back: LoraTarget[] = ['self_attn.k_proj', 'mlp.up_proj', 'wte'];
    expect(familyLoraTargets(back, demo())).toEqual(['attn.c_attn', 'mlp.c_fc', 'wte']);
    expect(familyLoraTargets(all, demo())).toEqual(all);
  });
});

describe('PEFT adapters of the Llama family', () => {
  it.each(['llama', 'qwen2', 'starcoder2'])(
    '%s: keys base_model.model.model.layers.N…, the head base_model.model.score.weight, leaf target_modules; imported back',
    async (name) => {
      const config = family(name);
      const d = describeDecoder(config);
      const lora = { r: 4, alpha: 8, dropout: 0.05, targets: [...d.loraTargets] };
      const trainables = initialTrainables(config, lora, true, 3);
      expect(trainables.has('score.weight')).toBe(true);
      const specs = loraParamSpecs(config, lora);
      expect([...trainables.keys()]).toEqual([...specs.map((s) => s.name), 'score.weight']);
      const shapes = new Map([
        ...specs.map((s) => [s.name, s.shape] as const),
        ['score.weight', [2, d.width]],
      ]);
      const run = resolveConfig({ lora: { r: 4, alpha: 8 } });
      const files = exportPeftAdapter(trainables, shapes, run, `tiny-${name}`);
      const adapterConfig = JSON.parse(new TextDecoder().decode(files[0].bytes));
      const mlp = name === 'starcoder2' ? ['c_fc', 'c_proj'] : ['gate_proj', 'up_proj', 'down_proj'];
      expect(adapterConfig).toMatchObject({
        peft_type: 'LORA',
        task_type: 'SEQ_CLS',
        target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', ...mlp, 'embed_tokens'],
        modules_to_save: ['score'],
      });
      const imported = await importPeftAdapter(new TextDecoder().decode(files[0].bytes), files[1].bytes);
      expect([...imported.tensors.keys()]).toEqual([...trainables.keys()]);
      for (const [k, v] of trainables) expect(imported.tensors.get(k)).toEqual(v);
      const header = files[1].bytes;
      const n = Number(new DataView(header.buffer, header.byteOffset).getBigUint64(0, true));
      const keys = Object.keys(JSON.parse(new TextDecoder().decode(header.subarray(8, 8 + n))));
      expect(keys).toContain('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight');
      expect(keys).toContain('base_model.model.model.embed_tokens.lora_embedding_B');
      expect(keys).toContain('base_model.model.score.weight');
    },
  );

  it('GPT-BigCode adapters keep the run config’s target names', () => {
    expect(peftTargetModules(['transformer.h.0.attn.c_attn.lora_A.weight', 'score.weight'])).toBeUndefined();
    expect(
      peftTargetModules([
        'model.layers.0.self_attn.o_proj.lora_A.weight',
        'model.layers.0.self_attn.o_proj.lora_B.weight',
        'model.layers.1.self_attn.o_proj.lora_A.weight',
        'score.weight',
      ]),
    ).toEqual(['o_proj']);
  });
});

describe('next-token answers', () => {
  it('are the tokens after the prompt’s end: the same first tokens as a lone " YES" / " NO" for byte-level BPE', () => {
    const dir = join(ROOT, 'public/models/demo');
    const tokenizer = loadTokenizer(
      readFileSync(join(dir, 'tokenizer.json'), 'utf8'),
      readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'),
    );
    expect(ntpAnswers(tokenizer)).toEqual({
      yes: tokenizer.encode(NTP_PROMPT.yes)[0],
      no: tokenizer.encode(NTP_PROMPT.no)[0],
    });
  });

  it('refuses a tokenizer that cannot tell them apart', () => {
    const same = { encode: (text: string) => [...text].map(() => 7) };
    expect(() => ntpAnswers(same)).toThrow(/cannot tell " YES" from " NO"/);
  });
});
