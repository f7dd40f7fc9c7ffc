/**
 * The PyTorch recipe end to end: a lab run exported with `export-recipe` trains under torchrun
 * (gloo, CPU) on 1 and 2 processes with the same per-step losses; the lab's own TrainingRun
 * takes the same steps; the recipe's PEFT adapter comes back into the lab (`eval`) and scores the
 * test split with the PyTorch probabilities; a checkpointed run resumes bit for bit. The same for the
 * next-token objective (the paper's prompts, a CAUSAL_LM adapter) on a slice of the data, with LoRA on
 * the token embedding too (target wte, PEFT's lora_embedding_A/B) at its own optimizer.embeddingLr.
 *
 * Needs Debian's python3-torch (CI installs it: .ci/install-system.sh). VULNLAB_SKIP_TORCH=1 skips
 * this file on machines without it; VULNLAB_PYTHON picks another interpreter.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { createNodeContext } from '../../src/engine/gpu/node.ts';
import { quantizeQ4_0, quantizeQ8_0 } from '../../src/engine/quant.ts';
import type { BatchMode } from '../../src/data/batching.ts';
import { importDataset } from '../../src/data/import.ts';
import type { DataRecord } from '../../src/data/types.ts';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { findPreset } from '../../src/io/presets.ts';
import { exportRecipe } from '../../src/cli/export-recipe.ts';
import { UsageError } from '../../src/cli/flags.ts';
import { stepBatches } from '../../src/train/batches.ts';
import { configForModel, type RunConfig } from '../../src/train/config.ts';
import { chooseThreshold, evaluateScores, type ScoredExample } from '../../src/train/evaluate.ts';
import { loadRunModel, prepareRunData, type PreparedModel } from '../../src/train/prepare.ts';
import { TrainingRun, type RunData, type RunExample } from '../../src/train/run.ts';
import { expectRocAucClose, rocAucTolerance } from '../helpers/metric-tolerance.ts';

const exec = promisify(execFile);
const PYTHON = process.env.VULNLAB_PYTHON ?? '/usr/bin/python3';
const SKIP = process.env.VULNLAB_SKIP_TORCH === '1';
/** 1 vs N processes: the same float32 kernels, summed in another order (gloo's all-reduce). */
const PROCESSES_TOLERANCE = 1e-5;
/** Lab (WGSL) vs torch (ATen) float32 kernels, relative to the loss, over a few steps at lr 2e-3. */
const LAB_LOSS_TOLERANCE = 1e-5;
/**
 * |Δp| between the lab's and torch's float32 forwards of the same adapter (observed ~1e-7). ROC AUC is
 * compared with a tolerance derived from it (tests/helpers/metric-tolerance.ts): a near-tied pair may
 * swap between the engines and move ROC AUC by 1/(P·N).
 */
const PROBABILITY_TOLERANCE = 1e-5;
const STEPS = 6;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

async function run(
  file: string,
  args: string[],
  env: Record<string, string> = {},
  timeout = 150_000,
): Promise<Outcome> {
  const started = performance.now();
  try {
    const { stdout, stderr } = await exec(file, args, {
      timeout,
      maxBuffer: 64 << 20,
      env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1', ...env },
    });
    return { code: 0, stdout, stderr, seconds: (performance.now() - started) / 1000 };
  } catch (error) {
    const e = error as { code?: number; signal?: string; stdout?: string; stderr?: string };
    const stderr = `${e.stderr ?? ''}${e.signal ? `\n(killed by ${e.signal})` : ''}\n${(e.stdout ?? '').slice(-3000)}`;
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr, seconds: 0 };
  }
}

const vulnlab = (args: string[]) => run('node', ['--import', 'tsx', 'src/cli/main.ts', ...args]);

/**
 * torchrun on a recipe through its launch.sh, as a user starts it. On the loaded 2-core CI machine a
 * 2-process gloo run has once finished every step and written its outputs, then exited 1 with nothing
 * on stderr (torch 1.13's elastic agent at teardown): such a run — complete output, failed exit — is
 * run once more, and said so; any other failure, or the same one twice, fails the test.
 */
async function launch(recipe: string, out: string, processes: number, ...args: string[]): Promise<Outcome> {
  const start = () =>
    run('bash', [join(recipe, 'launch.sh'), '--device', 'cpu', '--threads', '1', ...args], {
      NPROC_PER_NODE: String(processes),
      OUT: out,
      PYTHON,
      TORCHRUN: `${PYTHON} -m torch.distributed.run`,
    });
  const first = await start();
  const finishedThenFailed = first.code !== 0 && processes > 1 && /outputs in /.test(first.stdout);
  if (!finishedThenFailed) return first;
  console.warn(`torchrun (${processes} processes) exited ${first.code} after its outputs; running it again`);
  return start();
}

interface StepLoss {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  embedding_lr?: number;
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

/** The header of a .safetensors file: tensor name → dtype and shape. */
function safetensorsHeader(path: string): Record<string, { dtype: string; shape: number[] }> {
  const bytes = readFileSync(path);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Record<string, unknown>;
  delete header.__metadata__;
  return header as Record<string, { dtype: string; shape: number[] }>;
}
const losses = (out: string) => readJson<StepLoss[]>(join(out, 'losses.json'));

/** Largest |Δloss| of `b` against the same steps of `a`, relative to the loss when asked. */
function lossGap(a: readonly number[], b: readonly number[], relative = false): number {
  expect(b.length).toBeGreaterThan(0);
  return Math.max(...b.map((loss, i) => Math.abs(loss - a[i]) / (relative ? Math.abs(a[i]) : 1)));
}

/** scores.csv rows of one split: example index → probability (and → label). */
function readScores(path: string, split: string, labels?: Map<number, number>): Map<number, number> {
  const [header, ...rows] = readFileSync(path, 'utf8').trim().split('\n');
  expect(header).toBe('split,example_index,label,score,cwe');
  const scores = new Map<number, number>();
  for (const row of rows) {
    const [s, index, label, score] = row.split(',');
    if (s !== split) continue;
    scores.set(Number(index), Number(score));
    labels?.set(Number(index), Number(label));
  }
  return scores;
}

/** A run folder as `train` leaves it: config.json, run.json and data.jsonl with each record's split. */
function writeRun(dir: string, config: RunConfig, records: readonly DataRecord[]): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ model: 'demo', data: 'data.jsonl' }));
  writeFileSync(join(dir, 'data.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

async function demoRecords(): Promise<DataRecord[]> {
  const data = readFileSync('public/demo/java-vulns.jsonl');
  return (await importDataset({ name: 'java-vulns.jsonl', data })).records;
}

let gpuContext: GpuContext | undefined;
const gpu = async () => (gpuContext ??= await createNodeContext());
afterAll(() => gpuContext?.destroy());

/**
 * The lab's TrainingRun for `steps` optimizer steps: its per-step losses. They depend on the training
 * split only, so validation and test shrink to a few functions of each class (a stopped run still
 * scores them).
 */
async function labLosses(config: RunConfig, prepared: PreparedModel, data: RunData, steps: number) {
  const few = (examples: RunExample[]) =>
    [0, 1].flatMap((label) => examples.filter((e) => e.label === label).slice(0, 3));
  data = { ...data, validation: few(data.validation), test: few(data.test) };
  const seen: number[] = [];
  const lab = await TrainingRun.create(await gpu(), config, prepared.model, data, (event) => {
    if (event.type !== 'step') return;
    seen.push(event.loss);
    if (event.step === steps) lab.stop();
  });
  await lab.run().finally(() => lab.destroy());
  return seen;
}

/** The lab's `eval` of a recipe's adapter on the run's test split, against the recipe's own scores. */
async function evalAgainstTorch(runDir: string, torchOut: string, evalOut: string) {
  const adapter = join(torchOut, 'adapter');
  const data = join(runDir, 'data.jsonl');
  const evaluated = await vulnlab([
    'eval',
    '--model',
    'demo',
    '--adapter',
    adapter,
    '--data',
    data,
    '--split',
    'test',
    '--out',
    evalOut,
  ]);
  expect(evaluated.code, evaluated.stderr).toBe(0);
  const labels = new Map<number, number>();
  const lab = readScores(join(evalOut, 'scores.csv'), 'test');
  const torch = readScores(join(torchOut, 'scores.csv'), 'test', labels);
  expect([...lab.keys()].sort()).toEqual([...torch.keys()].sort());
  const probabilities = [...torch.values()];
  return {
    n: torch.size,
    gap: Math.max(...[...torch].map(([index, p]) => Math.abs(p - lab.get(index)!))),
    spread: Math.max(...probabilities) - Math.min(...probabilities),
    /** torch's test probabilities and their labels, in one order: what the AUC tolerance derives from. */
    scores: probabilities,
    labels: [...torch.keys()].map((index) => labels.get(index)!),
    torch: readJson<{ test: { threshold: number; roc_auc: number } }>(join(torchOut, 'metrics.json')).test,
    lab: readJson<{ eval: { threshold: number; roc_auc: number } }>(join(evalOut, 'metrics.json')).eval,
    seconds: evaluated.seconds,
  };
}

describe.skipIf(SKIP)('PyTorch recipe (torchrun, gloo on CPU)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vulnlab-recipe-'));
  const runDir = join(dir, 'run');
  const recipe = join(dir, 'recipe');
  let config: RunConfig;
  let prepared: PreparedModel;
  let data: RunData;

  beforeAll(async () => {
    const torch = await run(PYTHON, ['-c', 'import torch.distributed as d; assert d.is_gloo_available()']);
    if (torch.code !== 0) {
      throw new Error(
        `${PYTHON} has no torch with gloo (${torch.stderr.trim().split('\n').pop()}). ` +
          'Install Debian’s python3-torch (sudo bash .ci/install-system.sh), or set VULNLAB_SKIP_TORCH=1.',
      );
    }
    const records = await demoRecords();
    config = configForModel(findPreset('demo')?.runDefaults, {
      batching: { packLength: 256, packsPerStep: 3 },
      schedule: { warmupRatio: 0 },
      epochs: 1,
      evalEvery: 0,
      checkpointEvery: 0,
      seed: 7,
    });
    writeRun(runDir, config, records);
    prepared = await loadRunModel(new NodeDirModelFiles('public/models/demo'), 'demo');
    data = prepareRunData(records, prepared.tokenizer, config, 256).data;
    const exported = await vulnlab(['export-recipe', '--run', runDir, '--out', recipe]);
    expect(exported.code, exported.stderr).toBe(0);
    console.log(`export-recipe: ${exported.seconds.toFixed(1)} s`);
  }, 180_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the splits as the lab tokenizes them, the model, the trainer and launch.sh', async () => {
    expect(readJson(join(recipe, 'recipe.json'))).toMatchObject({
      format: 1,
      packLength: 256,
      separatorId: prepared.model.separatorId,
      padId: prepared.model.padId,
      answers: null,
      model: { name: 'demo', path: 'model', config: { n_embd: 64, n_layer: 2 } },
    });
    expect(readJson(join(recipe, 'config.json'))).toEqual(config);
    for (const split of ['train', 'validation', 'test'] as const) {
      const lines = readFileSync(join(recipe, 'splits', `${split}.jsonl`), 'utf8')
        .trim()
        .split('\n');
      const rows = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(rows.length, split).toBe(data[split].length);
      rows.forEach((row, i) => {
        const e = data[split][i];
        expect(row.tokens).toEqual(Array.from(e.tokens));
        expect([row.label, row.weight, row.example_index, row.cwe]).toEqual([
          e.label,
          e.weight,
          e.exampleIndex,
          e.cwe ?? null,
        ]);
      });
    }
    expect(statSync(join(recipe, 'launch.sh')).mode & 0o111).not.toBe(0);
    expect(readFileSync(join(recipe, 'model', 'model.safetensors'))).toEqual(
      readFileSync('public/models/demo/model.safetensors'),
    );

    // Usage errors (the CLI exits 2 on these).
    await expect(exportRecipe.run(['--run', runDir, '--out', recipe])).rejects.toThrow(/is not empty/);
    const noRun = exportRecipe.run(['--run', join(dir, 'nothing'), '--out', join(dir, 'x')]);
    await expect(noRun).rejects.toThrow(UsageError);
    await expect(noRun).rejects.toMatchObject({ hint: expect.stringContaining('run.json') });
  });

  it('packs and quantizes like the lab (batches of every mode, q8_0/q4_0 bytes)', async () => {
    const probe = await run(PYTHON, ['tests/recipes/probe.py', recipe]);
    expect(probe.code, probe.stderr).toBe(0);
    const { batches, quant } = JSON.parse(probe.stdout) as {
      batches: Record<string, number[][][]>;
      quant: Record<string, string>;
    };
    const lab = (examples: RunExample[], mode: BatchMode, epoch: number, shuffle: boolean, maxPer = 200) =>
      stepBatches(
        examples,
        {
          mode,
          packs: 3,
          packLength: 256,
          maxFunctionsPerPack: maxPer,
          separatorId: prepared.model.separatorId,
          padId: prepared.model.padId,
          seed: 7,
        },
        epoch,
        shuffle,
      ).map((batch) =>
        Array.from({ length: batch.rows }, (_, row) =>
          batch.functions.filter((f) => f.pack === row).map((f) => examples[f.exampleIndex].exampleIndex),
        ),
      );
    for (const mode of ['packed', 'paper', 'padded'] as const) {
      for (const epoch of [0, 1]) {
        expect(batches[`${mode}/${epoch}`], `${mode}/${epoch}`).toEqual(lab(data.train, mode, epoch, true));
      }
    }
    expect(batches['packed/0']).not.toEqual(batches['packed/1']);
    expect(batches['packed/0/max2']).toEqual(lab(data.train, 'packed', 0, true, 2));
    expect(batches['paper/eval']).toEqual(lab(data.validation, 'paper', 0, false));

    const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    const odd = Float32Array.from({ length: 5 * 45 }, (_, i) => (((i * 7) % 23) - 11) / 3);
    const tensors: [string, number, number, ArrayLike<number>][] = [['odd', 5, 45, odd]];
    for (const target of ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']) {
      const name = `transformer.h.0.${target}.weight`;
      const values = prepared.model.weights.get(name)!;
      const cols = target === 'mlp.c_proj' ? 256 : 64;
      tensors.push([name, values.length / cols, cols, values]);
    }
    for (const [name, rows, cols, values] of tensors) {
      expect(quant[`${name}/q8_0`], `${name} q8_0`).toBe(sha(quantizeQ8_0(rows, cols, values)));
      expect(quant[`${name}/q4_0`], `${name} q4_0`).toBe(sha(quantizeQ4_0(rows, cols, values)));
    }
  });

  it('trains under torchrun: 2 processes (sharded, accumulating) match 1 process, step by step', async () => {
    const one = await launch(recipe, join(dir, 'one'), 1, '--max-steps', String(STEPS));
    expect(one.code, one.stderr).toBe(0);
    // 3 packs per step: 2 + 1 over two processes, one pack per forward (gradient accumulation, no_sync).
    const two = await launch(recipe, join(dir, 'two'), 2, '--max-steps', String(STEPS), '--micro-batch', '1');
    expect(two.code, two.stderr).toBe(0);

    const base = losses(join(dir, 'one')).map((s) => s.loss);
    expect(base.length).toBe(STEPS);
    expect(new Set(base).size).toBe(STEPS); // it trains: every step differs
    const gapTwo = lossGap(
      base,
      losses(join(dir, 'two')).map((s) => s.loss),
    );
    console.log(
      `torchrun: 1 process ${one.seconds.toFixed(1)} s, 2 processes ${two.seconds.toFixed(1)} s; ` +
        `max |Δloss| 2 vs 1 process ${gapTwo.toExponential(2)}`,
    );
    expect(gapTwo).toBeLessThan(PROCESSES_TOLERANCE);

    // The lab's metrics.json shape, and the lab's own evaluation of the recipe's scores agrees.
    const metrics = readJson<Record<string, Record<string, unknown>>>(join(dir, 'two', 'metrics.json'));
    expect(metrics.runtime).toMatchObject({ processes: 2, parallel: 'ddp', engine: 'torch' });
    expect(metrics.steps).toBe(STEPS);
    const scored = (split: 'validation' | 'test'): ScoredExample[] => {
      const scores = readScores(join(dir, 'two', 'scores.csv'), split);
      return data[split].map((e) => ({ ...e, score: scores.get(e.exampleIndex)! }));
    };
    const threshold = chooseThreshold(scored('validation'));
    for (const [split, key] of [
      ['validation', 'valid'],
      ['test', 'test'],
    ] as const) {
      const lab = evaluateScores(scored(split), threshold, { intervals: true, seed: config.seed });
      const m = metrics[key];
      expect(m.threshold).toBe(threshold);
      expect(m.n).toBe(lab.n);
      expect(m.roc_auc as number).toBeCloseTo(lab.rocAuc!, 12);
      expect(m.pr_auc as number).toBeCloseTo(lab.prAuc!, 12);
      expect([m.f1, m.precision, m.recall]).toEqual([
        lab.atThreshold.f1,
        lab.atThreshold.precision,
        lab.atThreshold.recall,
      ]);
      expect(m.intervals_95).toEqual({
        roc_auc: [lab.intervals!.rocAuc.low, lab.intervals!.rocAuc.high],
        pr_auc: [lab.intervals!.prAuc.low, lab.intervals!.prAuc.high],
        f1: [lab.intervals!.f1.low, lab.intervals!.f1.high],
      });
    }
  }, 300_000);

  it('takes the lab’s own steps: TrainingRun on WebGPU gives the same losses', async () => {
    const lab = await labLosses(config, prepared, data, 4);
    const gap = lossGap(
      losses(join(dir, 'one')).map((s) => s.loss),
      lab,
      true,
    );
    console.log(
      `lab vs torch, 4 steps (same init, packs, dropout masks): max |Δloss|/loss ${gap.toExponential(2)}`,
    );
    expect(lab.length).toBe(4);
    expect(gap).toBeLessThan(LAB_LOSS_TOLERANCE);
  }, 240_000);

  it('comes back into the lab: `eval` of the adapter gives the PyTorch probabilities', async () => {
    const adapterConfig = readJson(join(dir, 'two', 'adapter', 'adapter_config.json'));
    expect(adapterConfig).toMatchObject({
      task_type: 'SEQ_CLS',
      r: config.lora.r,
      lora_alpha: config.lora.alpha,
    });
    const result = await evalAgainstTorch(runDir, join(dir, 'two'), join(dir, 'eval'));
    const observed = `max |Δp| ${result.gap.toExponential(2)} over ${result.n} test functions`;
    console.log(
      `lab eval vs torch on the test split: ${observed} (eval ${result.seconds.toFixed(1)} s); ` +
        `ROC AUC ${result.lab.roc_auc} vs ${result.torch.roc_auc}, |Δ| ${Math.abs(result.lab.roc_auc - result.torch.roc_auc).toExponential(2)}, ` +
        `allowed ${rocAucTolerance(result.scores, result.labels, PROBABILITY_TOLERANCE).toExponential(2)} ` +
        `(pairs within 2·${PROBABILITY_TOLERANCE}; ${rocAucTolerance(result.scores, result.labels, result.gap).toExponential(2)} at the observed max |Δp|)`,
    );
    expect(result.spread).toBeGreaterThan(0.01); // the adapter moved the scores: the comparison means something
    expect(result.gap, observed).toBeLessThan(PROBABILITY_TOLERANCE);
    expect(result.lab.threshold).toBe(result.torch.threshold); // vulnlab_detector.json carries it
    expectRocAucClose(result.lab.roc_auc, result.torch.roc_auc, {
      scores: result.scores,
      labels: result.labels,
      scoreTol: PROBABILITY_TOLERANCE,
      what: `test ROC AUC, lab eval vs torch (${observed})`,
    });
  }, 120_000);

  it('checkpoints and resumes bit for bit; refuses a bad recipe with a hint', async () => {
    const trainer = join(recipe, 'trainer', 'train.py');
    const out = join(dir, 'resumed');
    const common = [trainer, '--recipe', recipe, '--out', out, '--threads', '1'];
    const first = await run(PYTHON, [...common, '--max-steps', '2', '--save-every', '2']);
    expect(first.code, first.stderr).toBe(0);
    const resumed = await run(PYTHON, [...common, '--max-steps', '4', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain('resumed from');
    const whole = losses(join(dir, 'one')).map((s) => s.loss);
    expect(losses(out).map((s) => s.loss)).toEqual(whole.slice(0, 4));

    const bad = await run(PYTHON, [trainer, '--recipe', resolve(dir, 'missing')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('export-recipe');
  }, 120_000);
});

describe.skipIf(SKIP)('PyTorch recipe, next-token objective', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vulnlab-recipe-ntp-'));
  const runDir = join(dir, 'run');
  const recipe = join(dir, 'recipe');
  let config: RunConfig;
  let prepared: PreparedModel;
  let data: RunData;

  beforeAll(async () => {
    // A slice of the demo data keeps the lab's next-token steps (logits over the vocabulary) short.
    const all = await demoRecords();
    const sizes = { train: 24, validation: 12, test: 12 };
    const records = (['train', 'validation', 'test'] as const).flatMap((split) =>
      all.filter((r) => r.split === split).slice(0, sizes[split]),
    );
    config = configForModel(findPreset('demo')?.runDefaults, {
      objective: 'ntp',
      // One pack per step (the lab's default): the second process has no share and adds a zero gradient.
      batching: { packLength: 256, packsPerStep: 1 },
      // LoRA on the token embedding too, at 5× the peak lr (a second AdamW parameter group in torch).
      lora: { targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj', 'wte'] },
      optimizer: { embeddingLr: 1e-2 },
      schedule: { warmupRatio: 0 },
      epochs: 1,
      evalEvery: 0,
      checkpointEvery: 0,
      seed: 11,
    });
    writeRun(runDir, config, records);
    prepared = await loadRunModel(new NodeDirModelFiles('public/models/demo'), 'demo');
    data = prepareRunData(records, prepared.tokenizer, config, 256).data;
    const exported = await vulnlab(['export-recipe', '--run', runDir, '--out', recipe]);
    expect(exported.code, exported.stderr).toBe(0);
  }, 180_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('trains the paper’s prompts as the lab does, on 1 and 2 processes; the adapter scores back', async () => {
    expect(readJson<{ answers: unknown }>(join(recipe, 'recipe.json')).answers).toEqual(data.answers);
    const steps = 3;
    const one = await launch(recipe, join(dir, 'one'), 1, '--max-steps', String(steps));
    expect(one.code, one.stderr).toBe(0);
    const two = await launch(recipe, join(dir, 'two'), 2, '--max-steps', String(steps), '--micro-batch', '1');
    expect(two.code, two.stderr).toBe(0);
    const torch = losses(join(dir, 'one')).map((s) => s.loss);
    const gapTwo = lossGap(
      torch,
      losses(join(dir, 'two')).map((s) => s.loss),
    );
    const lab = await labLosses(config, prepared, data, steps);
    const gapLab = lossGap(torch, lab, true);
    const back = await evalAgainstTorch(runDir, join(dir, 'two'), join(dir, 'eval'));
    console.log(
      `next-token: max |Δloss| 2 vs 1 process ${gapTwo.toExponential(2)}; lab vs torch |Δloss|/loss ${gapLab.toExponential(2)}; ` +
        `lab eval vs torch on the test split (${back.n} functions): max |Δp| ${back.gap.toExponential(2)}`,
    );
    expect(readJson(join(dir, 'two', 'adapter', 'adapter_config.json'))).toMatchObject({
      task_type: 'CAUSAL_LM',
      modules_to_save: null,
      target_modules: config.lora.targets,
    });
    // The embedding's adapter: PEFT's keys (no ".weight") and shapes, and its own lr on the same schedule.
    const V = readJson<{ model: { config: { vocab_size: number; n_embd: number } } }>(
      join(recipe, 'recipe.json'),
    ).model.config;
    const header = safetensorsHeader(join(dir, 'two', 'adapter', 'adapter_model.safetensors'));
    expect(header['base_model.model.transformer.wte.lora_embedding_A']?.shape).toEqual([
      config.lora.r,
      V.vocab_size,
    ]);
    expect(header['base_model.model.transformer.wte.lora_embedding_B']?.shape).toEqual([
      V.n_embd,
      config.lora.r,
    ]);
    expect(config.optimizer.embeddingLr).toBe(1e-2);
    for (const s of losses(join(dir, 'one'))) {
      expect(s.embedding_lr, `step ${s.step}`).toBeCloseTo((s.lr * 1e-2) / config.optimizer.lr, 15);
    }
    expect(gapTwo).toBeLessThan(PROCESSES_TOLERANCE);
    expect(lab.length).toBe(steps);
    expect(gapLab).toBeLessThan(LAB_LOSS_TOLERANCE);
    expect(back.spread).toBeGreaterThan(0.01);
    expect(back.gap, `max |Δp| ${back.gap.toExponential(2)} over ${back.n} test functions`).toBeLessThan(
      PROBABILITY_TOLERANCE,
    );
    expect(back.lab.threshold).toBe(back.torch.threshold);
  }, 300_000);
});
