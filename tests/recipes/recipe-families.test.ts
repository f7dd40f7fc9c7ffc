/**
 * The PyTorch recipe's Llama family (llama, qwen2, starcoder2; recipes/torch/model.py beside GPT-BigCode):
 *
 * - golden.py builds the recipe's model from every float64 fixture of scripts/torch_reference.py
 *   (tests/fixtures/engine/, GPT-BigCode's cases too) and checks its head logits, loss, gradients,
 *   grad norm and AdamW steps (train.py's clipping) against the fixture, to float64 rounding (on the
 *   CPU; the CUDA attention branch is checked against the CPU one with a stand-in for
 *   scaled_dot_product_attention where torch has none);
 * - a tiny run per family goes through `export-recipe` (the family's config in recipe.json, the model
 *   copied) and trains with trainer/train.py: the family's LoRA targets (+ wte), its PEFT adapter
 *   (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, leaf target_modules), and
 *   `--init-adapter … --eval-only` scores the splits again exactly from that adapter.
 *
 * The models are the tiny Hugging Face checkpoints in tests/fixtures/families/<family>/ (config,
 * safetensors — starcoder2's sharded —, tokenizer); without them, random weights for the same config
 * (family_model.py) with the demo model's tokenizer. Needs Debian's python3-torch as recipe.test.ts;
 * VULNLAB_SKIP_TORCH=1 skips it, VULNLAB_PYTHON picks another interpreter.
 */
import { execFile } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importDataset } from '../../src/data/import.ts';
import type { DataRecord } from '../../src/data/types.ts';
import { findPreset } from '../../src/io/presets.ts';
import { configForModel, type RunConfig } from '../../src/train/config.ts';

const exec = promisify(execFile);
const PYTHON = process.env.VULNLAB_PYTHON ?? '/usr/bin/python3';
const SKIP = process.env.VULNLAB_SKIP_TORCH === '1';
/** Recipe vs reference, both float64 autograd: only the order of float64 sums differs. */
const GOLDEN_TOLERANCE = 1e-12;
/** After 3 AdamW steps: g/√v of a near-zero gradient amplifies that rounding (observed ≤ 1e-11). */
const GOLDEN_PARAMS_TOLERANCE = 1e-9;
const STEPS = 3;

async function run(file: string, args: string[], timeout = 150_000) {
  try {
    const { stdout, stderr } = await exec(file, args, {
      timeout,
      maxBuffer: 64 << 20,
      env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; signal?: string; stdout?: string; stderr?: string };
    const stderr = `${e.stderr ?? ''}${e.signal ? `\n(killed by ${e.signal})` : ''}\n${(e.stdout ?? '').slice(-3000)}`;
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr };
  }
}

const vulnlab = (args: string[]) => run('node', ['--import', 'tsx', 'src/cli/main.ts', ...args]);
const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

function safetensorsHeader(path: string): Record<string, { dtype: string; shape: number[] }> {
  const bytes = readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, unknown>;
  delete header.__metadata__;
  return header as Record<string, { dtype: string; shape: number[] }>;
}

/** scores.csv as "split/example_index" → probability. */
function readScores(path: string): Map<string, number> {
  const [, ...rows] = readFileSync(path, 'utf8').trim().split('\n');
  return new Map(
    rows.map((row) => row.split(',')).map(([split, index, , score]) => [`${split}/${index}`, Number(score)]),
  );
}

interface GoldenReport {
  family: string;
  trainables: number;
  loss: number;
  logits: number;
  grads: number;
  grad_norm: number;
  steps: number;
  params_after: number;
}

interface FamilyConfig {
  model_type: 'llama' | 'qwen2' | 'starcoder2';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
  num_hidden_layers: number;
}

/** One tiny run per family, each with other settings (objective, batching, weight format, dropout). */
const RUNS: {
  family: FamilyConfig['model_type'];
  targets: string[];
  overrides: Record<string, unknown>;
}[] = [
  {
    family: 'llama',
    targets: [
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'self_attn.o_proj',
      'mlp.gate_proj',
      'mlp.up_proj',
      'mlp.down_proj',
      'wte',
    ],
    overrides: {
      objective: 'cls',
      weightFormat: 'q8_0',
      recompute: true,
      batching: { mode: 'packed' },
      optimizer: { embeddingLr: 1e-2 },
    },
  },
  {
    family: 'qwen2',
    targets: ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj', 'wte'],
    overrides: { objective: 'ntp', weightFormat: 'f32', batching: { mode: 'paper' } },
  },
  {
    family: 'starcoder2',
    targets: [
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'self_attn.o_proj',
      'mlp.c_fc',
      'mlp.c_proj',
    ],
    overrides: {
      objective: 'cls',
      weightFormat: 'f16',
      lora: { dropout: 0.1 },
      batching: { mode: 'packed' },
    },
  },
];

/** A random stand-in when tests/fixtures/families/<family> is missing (the demo tokenizer's vocabulary). */
const STAND_IN: Record<FamilyConfig['model_type'], Record<string, unknown>> = {
  llama: {
    hidden_act: 'silu',
    rms_norm_eps: 1e-5,
    rope_scaling: { type: 'linear', factor: 2 },
    tie_word_embeddings: false,
  },
  qwen2: {
    hidden_act: 'silu',
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    tie_word_embeddings: true,
    use_sliding_window: false,
  },
  starcoder2: { hidden_act: 'gelu_pytorch_tanh', norm_epsilon: 1e-5, use_bias: true, sliding_window: 16 },
};

describe.skipIf(SKIP)('PyTorch recipe, Llama family', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vulnlab-recipe-family-'));
  let records: DataRecord[];

  beforeAll(async () => {
    const all = (
      await importDataset({ name: 'java-vulns.jsonl', data: readFileSync('public/demo/java-vulns.jsonl') })
    ).records;
    const sizes = { train: 24, validation: 12, test: 12 };
    records = (['train', 'validation', 'test'] as const).flatMap((split) =>
      all.filter((r) => r.split === split).slice(0, sizes[split]),
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('model.py gives the float64 fixtures’ logits, loss, gradients and AdamW steps, every family', async () => {
    const names = [
      'llama_packed_cls_gqa',
      'llama_paper_ntp_full',
      'qwen2_packed_ntp_tied',
      'qwen2_paper_cls_full',
      'starcoder2_packed_cls_window',
      'starcoder2_paper_ntp_full',
      'packed_cls_mqa_gelu',
      'paper_cls_mha_tanh',
      'packed_ntp_mqa_tanh',
      'paper_ntp_mqa_gelu',
      'packed_cls_full',
      'packed_cls_wte_mqa_gelu',
    ];
    const golden = await run(PYTHON, [
      'tests/recipes/golden.py',
      ...names.map((n) => join('tests/fixtures/engine', `${n}.json`)),
    ]);
    expect(golden.code, golden.stderr).toBe(0);
    const { fused_attention: fused, ...report } = JSON.parse(golden.stdout) as Record<
      string,
      GoldenReport
    > & {
      fused_attention: number;
    };
    expect(Object.keys(report).sort()).toEqual([...names].sort());
    // The CUDA branch (scaled_dot_product_attention on repeated K/V heads) against the explicit one.
    expect(fused).toBeLessThan(GOLDEN_TOLERANCE);
    expect(new Set(Object.values(report).map((r) => r.family))).toEqual(
      new Set(['gpt_bigcode', 'llama', 'qwen2', 'starcoder2']),
    );
    const worst = Object.entries(report).map(([name, r]) => {
      const { loss, logits, grads, grad_norm, steps } = r;
      return { name, first: Math.max(loss, logits, grads, grad_norm, steps), after: r.params_after };
    });
    console.log(
      `recipe vs float64 fixtures: largest relative error ${Math.max(...worst.map((w) => w.first)).toExponential(2)} ` +
        `(logits, loss, gradients, norms), ${Math.max(...worst.map((w) => w.after)).toExponential(2)} after the AdamW steps`,
    );
    for (const w of worst) {
      expect(w.first, w.name).toBeLessThan(GOLDEN_TOLERANCE);
      expect(w.after, w.name).toBeLessThan(GOLDEN_PARAMS_TOLERANCE);
    }
  }, 120_000);

  describe.each(RUNS)(
    '$family: export-recipe, train.py, the adapter back',
    ({ family, targets, overrides }) => {
      const base = join(dir, family);
      const runDir = join(base, 'run');
      const recipe = join(base, 'recipe');
      const out = join(base, 'out');
      let modelDir: string;
      let cfg: FamilyConfig;
      let config: RunConfig;

      beforeAll(async () => {
        mkdirSync(base, { recursive: true });
        modelDir = resolve('tests/fixtures/families', family);
        if (!existsSync(join(modelDir, 'config.json'))) {
          modelDir = join(base, 'model');
          mkdirSync(modelDir, { recursive: true });
          for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
            copyFileSync(join('public/models/demo', f), join(modelDir, f));
          }
          const demo = readJson<{ vocab_size: number }>('public/models/demo/config.json');
          const stand = {
            model_type: family,
            vocab_size: demo.vocab_size,
            hidden_size: 64,
            intermediate_size: 96,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 512,
            eos_token_id: 0,
            ...STAND_IN[family],
          };
          writeFileSync(join(modelDir, 'config.json'), JSON.stringify(stand, null, 2));
          const made = await run(PYTHON, [
            'tests/recipes/family_model.py',
            join(modelDir, 'config.json'),
            modelDir,
          ]);
          expect(made.code, made.stderr).toBe(0);
        }
        cfg = readJson<FamilyConfig>(join(modelDir, 'config.json'));
        // The lab's run config lists 'wte' here: its lora.targets take GPT-BigCode's block linears
        // (src/train/config.ts), so the family's targets are written into the recipe below.
        config = configForModel(findPreset('demo')?.runDefaults, {
          ...overrides,
          lora: { ...((overrides.lora as object | undefined) ?? {}), targets: ['wte'] },
          batching: { packLength: 256, packsPerStep: 2, ...(overrides.batching as object) },
          schedule: { warmupRatio: 0 },
          epochs: 1,
          evalEvery: 0,
          checkpointEvery: 0,
          seed: 5,
        });
        mkdirSync(runDir, { recursive: true });
        writeFileSync(join(runDir, 'config.json'), JSON.stringify(config, null, 2));
        writeFileSync(join(runDir, 'run.json'), JSON.stringify({ model: modelDir, data: 'data.jsonl' }));
        writeFileSync(join(runDir, 'data.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
        const exported = await vulnlab(['export-recipe', '--run', runDir, '--out', recipe, '--copy-model']);
        expect(exported.code, exported.stderr).toBe(0);
        const recipeConfig = readJson<RunConfig>(join(recipe, 'config.json'));
        writeFileSync(
          join(recipe, 'config.json'),
          JSON.stringify({ ...recipeConfig, lora: { ...recipeConfig.lora, targets } }, null, 2),
        );
      }, 180_000);

      it('recipe.json carries the family’s config; the checkpoint is copied as it is', () => {
        const manifest = readJson<{
          model: { config: Record<string, unknown>; path: string };
          packLength: number;
        }>(join(recipe, 'recipe.json'));
        expect(manifest.model.path).toBe('model');
        expect(manifest.packLength).toBe(256);
        const { architectures: _, ...fields } = cfg as unknown as Record<string, unknown>;
        for (const key of [
          'model_type',
          'hidden_size',
          'num_key_value_heads',
          'rope_theta',
          'rope_scaling',
        ]) {
          if (fields[key] !== undefined) expect(manifest.model.config[key], key).toEqual(fields[key]);
        }
        for (const key of [
          'sliding_window',
          'tie_word_embeddings',
          'use_bias',
          'rms_norm_eps',
          'norm_epsilon',
        ]) {
          if (fields[key] !== undefined) expect(manifest.model.config[key], key).toEqual(fields[key]);
        }
        const weights = existsSync(join(modelDir, 'model.safetensors.index.json'))
          ? Object.values(
              readJson<{ weight_map: Record<string, string> }>(join(modelDir, 'model.safetensors.index.json'))
                .weight_map,
            )
          : ['model.safetensors'];
        for (const file of new Set(weights)) {
          expect(
            readFileSync(join(recipe, 'model', file)).equals(readFileSync(join(modelDir, file))),
            file,
          ).toBe(true);
        }
      });

      it('trains with the family’s LoRA targets and writes its PEFT adapter; --eval-only scores it back', async () => {
        const trainer = join(recipe, 'trainer', 'train.py');
        const trained = await run(PYTHON, [
          trainer,
          '--recipe',
          recipe,
          '--out',
          out,
          '--threads',
          '1',
          '--max-steps',
          String(STEPS),
        ]);
        expect(trained.code, trained.stderr).toBe(0);
        const losses = readJson<{ loss: number; grad_norm: number }[]>(join(out, 'losses.json'));
        expect(losses.length).toBe(STEPS);
        for (const s of losses) {
          expect(Number.isFinite(s.loss) && s.loss > 0).toBe(true);
          expect(s.grad_norm).toBeGreaterThan(0);
        }
        expect(new Set(losses.map((s) => s.loss)).size).toBe(STEPS); // it trains: every step differs
        const metrics = readJson<{ steps: number; runtime: Record<string, unknown> }>(
          join(out, 'metrics.json'),
        );
        expect(metrics.steps).toBe(STEPS);
        expect(metrics.runtime).toMatchObject({ engine: 'torch', base_format: config.weightFormat });

        // The adapter in the family's PEFT layout.
        const cls = config.objective === 'cls';
        const adapterConfig = readJson<Record<string, unknown>>(join(out, 'adapter', 'adapter_config.json'));
        expect(adapterConfig).toMatchObject({
          peft_type: 'LORA',
          task_type: cls ? 'SEQ_CLS' : 'CAUSAL_LM',
          r: config.lora.r,
          lora_alpha: config.lora.alpha,
          target_modules: targets.map((t) => (t === 'wte' ? 'embed_tokens' : t.split('.')[1])),
          modules_to_save: cls ? ['score'] : null,
        });
        const D = cfg.hidden_size;
        const hd = cfg.head_dim ?? D / cfg.num_attention_heads;
        const q = cfg.num_attention_heads * hd;
        const kv = (cfg.num_key_value_heads ?? cfg.num_attention_heads) * hd;
        const I = cfg.intermediate_size;
        const shapes: Record<string, [number, number]> = {
          'self_attn.q_proj': [q, D],
          'self_attn.k_proj': [kv, D],
          'self_attn.v_proj': [kv, D],
          'self_attn.o_proj': [D, q],
          'mlp.gate_proj': [I, D],
          'mlp.up_proj': [I, D],
          'mlp.down_proj': [D, I],
          'mlp.c_fc': [I, D],
          'mlp.c_proj': [D, I],
        };
        const r = config.lora.r;
        const expected: Record<string, number[]> = {};
        for (let layer = 0; layer < cfg.num_hidden_layers; layer++) {
          for (const t of targets.filter((t) => t !== 'wte')) {
            const [rows, cols] = shapes[t];
            expected[`base_model.model.model.layers.${layer}.${t}.lora_A.weight`] = [r, cols];
            expected[`base_model.model.model.layers.${layer}.${t}.lora_B.weight`] = [rows, r];
          }
        }
        if (targets.includes('wte')) {
          expected['base_model.model.model.embed_tokens.lora_embedding_A'] = [r, cfg.vocab_size];
          expected['base_model.model.model.embed_tokens.lora_embedding_B'] = [D, r];
        }
        if (cls) expected['base_model.model.score.weight'] = [2, D];
        const header = safetensorsHeader(join(out, 'adapter', 'adapter_model.safetensors'));
        expect(Object.fromEntries(Object.entries(header).map(([k, v]) => [k, v.shape]))).toEqual(expected);

        // The adapter alone, read back by the trainer, gives the run's final scores.
        const again = join(base, 'again');
        const evaluated = await run(PYTHON, [
          trainer,
          '--recipe',
          recipe,
          '--out',
          again,
          '--threads',
          '1',
          '--init-adapter',
          join(out, 'adapter'),
          '--eval-only',
        ]);
        expect(evaluated.code, evaluated.stderr).toBe(0);
        const first = readScores(join(out, 'scores.csv'));
        const second = readScores(join(again, 'scores.csv'));
        expect(first.size).toBe(24);
        expect([...second.keys()]).toEqual([...first.keys()]);
        const probabilities = [...first.values()];
        expect(Math.max(...probabilities) - Math.min(...probabilities)).toBeGreaterThan(0); // not constant
        for (const [key, p] of first) expect(second.get(key), key).toBe(p);
      }, 180_000);
    },
  );
});
