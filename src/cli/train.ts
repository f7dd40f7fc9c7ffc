import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNodeContext } from '../engine/gpu/node.ts';
import { importDataset } from '../data/import.ts';
import type { DataRecord } from '../data/types.ts';
import { NodeDirModelFiles } from '../io/node-files.ts';
import { configForModel, FIELDS, type RunConfig } from '../train/config.ts';
import { findPreset } from '../io/presets.ts';
import { exportPeftAdapter } from '../train/export.ts';
import { loadRunModel, prepareRunData } from '../train/prepare.ts';
import { TrainingRun, type RunEvent, type RunResult } from '../train/run.ts';
import type { EvalMetrics } from '../train/evaluate.ts';
import { parseFlags, UsageError, type Command } from './flags.ts';

const DEMO_MODEL_DIR = fileURLToPath(new URL('../../public/models/demo/', import.meta.url));

/** Flags for the main hyperparameters, each mapped onto a run-config field. */
const FLAG_FIELDS: Record<string, { path: string; type: 'number' | 'string' }> = {
  epochs: { path: 'epochs', type: 'number' },
  lr: { path: 'optimizer.lr', type: 'number' },
  'focal-gamma': { path: 'loss.gamma', type: 'number' },
  loss: { path: 'loss.kind', type: 'string' },
  'lora-r': { path: 'lora.r', type: 'number' },
  'lora-alpha': { path: 'lora.alpha', type: 'number' },
  'pack-length': { path: 'batching.packLength', type: 'number' },
  'packs-per-step': { path: 'batching.packsPerStep', type: 'number' },
  batching: { path: 'batching.mode', type: 'string' },
  objective: { path: 'objective', type: 'string' },
  trainable: { path: 'trainable', type: 'string' },
  'weight-format': { path: 'weightFormat', type: 'string' },
  seed: { path: 'seed', type: 'number' },
};

const HELP = `Usage: npm run vulnlab -- train --model demo|DIR --data FILE --out DIR [options]

  --model demo|DIR     the embedded demo model, or a folder with config.json, tokenizer.json and weights
  --data FILE          JSONL, JSON, CSV/TSV, Parquet or zip of labelled Java functions
  --valid FILE         validation set (default: the data's split field, else a seeded stratified split)
  --test FILE          test set (likewise)
  --config FILE        a run config JSON (fields below); flags override it
  --out DIR            where config.json, metrics.json, adapter/, scores.csv and train.log go
${Object.entries(FLAG_FIELDS)
  .map(
    ([flag, { path }]) =>
      `  --${flag.padEnd(19)} ${path}: ${FIELDS.find((f) => f.path === path)!.description}`,
  )
  .join('\n')}

Run-config fields and defaults (the paper's):
${FIELDS.map((f) => `  ${f.path.padEnd(28)} ${JSON.stringify(f.default)}`).join('\n')}`;

async function readRecords(file: string, role: string): Promise<DataRecord[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new UsageError(
      `Cannot read ${role} file ${file}: ${(error as Error).message}`,
      HELP.split('\n')[0],
    );
  }
  const result = await importDataset({ name: basename(file), data: bytes });
  for (const issue of result.issues.slice(0, 5)) {
    console.warn(`${file}${issue.line ? `:${issue.line}` : ''}: ${issue.message}`);
  }
  if (result.issues.length > 5) console.warn(`… ${result.issues.length - 5} more issues in ${file}`);
  return result.records;
}

function buildConfig(values: Record<string, unknown>, fileConfig: unknown, model: string): RunConfig {
  const partial = structuredClone((fileConfig ?? {}) as Record<string, unknown>);
  const set = (path: string, value: unknown) => {
    const keys = path.split('.');
    let node = partial;
    for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    node[keys[keys.length - 1]] = value;
  };
  for (const [flag, { path, type }] of Object.entries(FLAG_FIELDS)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const value = type === 'number' ? Number(raw) : raw;
    if (type === 'number' && !Number.isFinite(value)) {
      throw new UsageError(`--${flag} must be a number (got "${raw}")`, `--${flag} sets ${path}.`);
    }
    set(path, value);
  }
  return configForModel(findPreset(model)?.runDefaults, partial);
}

/** A one-line progress bar on a TTY, plain lines otherwise (CI logs). */
function progressPrinter(log: (line: string) => void) {
  const tty = process.stdout.isTTY;
  let total = 0;
  return (event: RunEvent) => {
    switch (event.type) {
      case 'started':
        total = event.totalSteps;
        log(
          `training: ${event.trainFunctions} functions, ${event.stepsPerEpoch} steps/epoch, ${total} steps, ${(100 * event.wastedShare).toFixed(1)}% padding`,
        );
        break;
      case 'step': {
        const line = `step ${event.step}/${total} epoch ${event.epoch + 1} loss ${event.loss.toFixed(4)} lr ${event.lr.toExponential(2)} |g| ${event.gradNorm.toFixed(3)} ${event.tokensPerSecond.toFixed(0)} tok/s`;
        if (tty) {
          const width = 24;
          const done = Math.round((width * event.step) / Math.max(1, total));
          process.stdout.write(`\r[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${line}   `);
          if (event.step === total) process.stdout.write('\n');
        } else if (event.step % 10 === 0 || event.step === total) console.log(line);
        log(line);
        break;
      }
      case 'eval': {
        const line = `eval ${event.split} at step ${event.step}: ROC AUC ${fmt(event.metrics.rocAuc)} PR AUC ${fmt(event.metrics.prAuc)} F1 ${event.metrics.atThreshold.f1.toFixed(3)} (threshold ${event.threshold.toFixed(3)})`;
        if (tty) process.stdout.write('\n');
        console.log(line);
        log(line);
        break;
      }
      case 'warning':
        console.warn(`warning: ${event.message}`);
        log(`warning: ${event.message}`);
        break;
      case 'state':
        if (event.reason) console.warn(`run ${event.state}: ${event.reason}`);
        log(`state ${event.state} at step ${event.step}${event.reason ? `: ${event.reason}` : ''}`);
        break;
      case 'change':
        log(`change at step ${event.step}: ${event.path} = ${JSON.stringify(event.value)}`);
        break;
    }
  };
}

const fmt = (value: number | null) => (value === null ? 'n/a' : value.toFixed(4));

function metricsSummary(m: EvalMetrics, threshold: number) {
  return {
    n: m.n,
    positives: m.positives,
    roc_auc: m.rocAuc,
    pr_auc: m.prAuc,
    pr_auc_trapezoid: m.prAucTrapezoid,
    f1: m.atThreshold.f1,
    precision: m.atThreshold.precision,
    recall: m.atThreshold.recall,
    threshold,
    confusion_matrix: m.atThreshold.confusion,
    f1_threshold_tuned_on_this_set: m.selfTunedF1.f1,
    intervals_95: m.intervals && {
      roc_auc: [m.intervals.rocAuc.low, m.intervals.rocAuc.high],
      pr_auc: [m.intervals.prAuc.low, m.intervals.prAuc.high],
      f1: [m.intervals.f1.low, m.intervals.f1.high],
    },
    per_cwe_roc_auc: Object.fromEntries(Object.entries(m.perCwe).map(([cwe, g]) => [cwe, g.rocAuc])),
  };
}

async function writeOutputs(
  out: string,
  config: RunConfig,
  result: RunResult,
  shapes: Map<string, number[]>,
  model: string,
  log: string[],
) {
  await mkdir(join(out, 'adapter'), { recursive: true });
  await writeFile(join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  const metrics = {
    model,
    steps: result.steps,
    best_step: result.bestStep,
    valid: metricsSummary(result.validation, result.threshold),
    test: metricsSummary(result.test, result.threshold),
    throughput: {
      tokens_per_s: result.throughput.tokensPerSecond,
      examples_per_s: result.throughput.examplesPerSecond,
      train_seconds: result.throughput.trainMs / 1000,
    },
    changes: result.history,
  };
  await writeFile(join(out, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  for (const file of exportPeftAdapter(result.trainables, shapes, config, model)) {
    await writeFile(join(out, 'adapter', file.name), file.bytes);
  }
  const rows = ['split,example_index,label,score,cwe'];
  for (const { split, examples } of result.scores) {
    for (const e of examples) rows.push(`${split},${e.exampleIndex},${e.label},${e.score},${e.cwe ?? ''}`);
  }
  await writeFile(join(out, 'scores.csv'), rows.join('\n') + '\n');
  await writeFile(join(out, 'train.log'), log.join('\n') + '\n');
}

export const train: Command = {
  name: 'train',
  summary: 'finetune a model on a Java dataset; writes metrics, scores and a PEFT adapter',
  help: () => HELP,
  async run(args) {
    const { values } = parseFlags(
      args,
      {
        model: { type: 'string', default: 'demo' },
        data: { type: 'string' },
        valid: { type: 'string' },
        test: { type: 'string' },
        config: { type: 'string' },
        out: { type: 'string' },
        ...Object.fromEntries(Object.keys(FLAG_FIELDS).map((flag) => [flag, { type: 'string' as const }])),
      },
      HELP,
    );
    if (!values.data) throw new UsageError('--data FILE is required.', HELP);
    if (!values.out) throw new UsageError('--out DIR is required.', HELP);
    const demo = values.model === 'demo';
    let fileConfig: unknown;
    if (values.config) {
      try {
        fileConfig = JSON.parse(await readFile(values.config, 'utf8'));
      } catch (error) {
        throw new UsageError(
          `Cannot read --config ${values.config}: ${(error as Error).message}`,
          HELP.split('\n')[0],
        );
      }
    }
    const config = buildConfig(values, fileConfig, String(values.model));
    const log: string[] = [];
    const started = performance.now();

    const modelDir = demo ? DEMO_MODEL_DIR : resolve(String(values.model));
    const prepared = await loadRunModel(new NodeDirModelFiles(modelDir), String(values.model));
    const packLength = Math.min(config.batching.packLength, prepared.model.config.n_positions);

    let records = await readRecords(values.data, 'data');
    if (values.valid || values.test) {
      const tag = (split: DataRecord['split']) => (r: DataRecord) => ({ ...r, split });
      records = records.map(tag('train'));
      if (values.valid)
        records.push(...(await readRecords(values.valid, 'validation')).map(tag('validation')));
      if (values.test) records.push(...(await readRecords(values.test, 'test')).map(tag('test')));
    }
    const { data, splits, tokenize } = prepareRunData(records, prepared.tokenizer, config, packLength);
    const summary = splits.summary.map((s) => `${s.split} ${s.size} (${s.positives} vulnerable)`).join(', ');
    console.log(
      `data: ${records.length} functions — ${summary}; ${tokenize.truncated} truncated, ${tokenize.dropped} dropped`,
    );
    log.push(`data: ${summary}`);

    const ctx = await createNodeContext();
    try {
      const run = await TrainingRun.create(
        ctx,
        config,
        prepared.model,
        data,
        progressPrinter((l) => log.push(l)),
      );
      const shapes = new Map<string, number[]>();
      try {
        const result = await run.run();
        for (const name of result.trainables.keys()) shapes.set(name, run.shapeOf(name));
        await writeOutputs(values.out, config, result, shapes, String(values.model), log);
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `test: ROC AUC ${fmt(result.test.rocAuc)}, PR AUC ${fmt(result.test.prAuc)}, F1 ${result.test.atThreshold.f1.toFixed(3)} at the validation threshold ${result.threshold.toFixed(3)} — ${seconds.toFixed(0)} s; outputs in ${values.out}`,
        );
      } finally {
        run.destroy();
      }
    } finally {
      ctx.destroy();
    }
  },
};
