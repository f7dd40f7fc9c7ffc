import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNodeContext } from '../engine/gpu/node.ts';
import type { DataRecord } from '../data/types.ts';
import { findPreset } from '../io/presets.ts';
import {
  CHECKPOINT_FILES,
  checkpointFiles,
  readCheckpoint,
  type RunCheckpoint,
} from '../train/checkpoint.ts';
import { configForModel, FIELDS, type RunConfig } from '../train/config.ts';
import { detectorSettingsFile, exportPeftAdapter } from '../train/export.ts';
import type { HistoryView } from '../train/history.ts';
import { contextLength, prepareRunData } from '../train/prepare.ts';
import { TrainingRun, type RunEvent, type RunResult } from '../train/run.ts';
import { parseFlags, UsageError, type Command } from './flags.ts';
import { loadCliModel, readRecords } from './inputs.ts';
import { fmt, metricsSummary, scoresCsv } from './report.ts';

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
  accumulate: { path: 'batching.accumulate', type: 'number' },
  batching: { path: 'batching.mode', type: 'string' },
  objective: { path: 'objective', type: 'string' },
  trainable: { path: 'trainable', type: 'string' },
  'weight-format': { path: 'weightFormat', type: 'string' },
  seed: { path: 'seed', type: 'number' },
};

const HELP = `Usage: npm run vulnlab -- train --model demo|DIR|HUB_ID --data FILE --out DIR [options]
       npm run vulnlab -- train --resume DIR

  --model demo|DIR|ID  the embedded demo model, a folder with config.json, tokenizer.json and weights,
                       or a Hugging Face repo id (HF_TOKEN for gated ones)
  --data FILE          JSONL, JSON, CSV/TSV, Parquet or zip of labelled Java functions
  --valid FILE         validation set (default: the data's split field, else a seeded stratified split)
  --test FILE          test set (likewise)
  --config FILE        a run config JSON (fields below); flags override it
  --out DIR            where config.json, metrics.json, adapter/, scores.csv, train.log, the data with
                       its splits (data.jsonl, run.json) and checkpoint/ go
  --resume DIR         continue the run in DIR from its last checkpoint (Ctrl-C saves one and exits)
${Object.entries(FLAG_FIELDS)
  .map(
    ([flag, { path }]) =>
      `  --${flag.padEnd(19)} ${path}: ${FIELDS.find((f) => f.path === path)!.description}`,
  )
  .join('\n')}

Run-config fields and defaults (the paper's):
${FIELDS.map((f) => `  ${f.path.padEnd(28)} ${JSON.stringify(f.default)}`).join('\n')}`;

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
        const line = `eval ${event.split} at step ${event.step}: loss ${event.loss.toFixed(4)}, ROC AUC ${fmt(event.metrics.rocAuc)} PR AUC ${fmt(event.metrics.prAuc)} F1 ${event.metrics.atThreshold.f1.toFixed(3)} (threshold ${event.threshold.toFixed(3)})`;
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

/**
 * metrics.json's `curves`: per-step training values and per-evaluation validation values, full
 * precision, from the run's own history (so a resumed run's curves start at step 1).
 */
function metricsCurves(history: HistoryView) {
  return {
    train: history.steps.map((p) => ({
      step: p.step,
      epoch: p.epoch,
      loss: p.loss,
      lr: p.lr,
      grad_norm: p.gradNorm,
    })),
    validation: history.evals.map((e) => ({
      step: e.step,
      loss: e.loss ?? null,
      roc_auc: e.rocAuc,
      pr_auc: e.prAuc,
    })),
  };
}

/** What `train --resume DIR` needs besides the checkpoint: the model and the records with their splits. */
interface RunManifest {
  model: string;
  data: string;
}

const CHECKPOINT_DIR = 'checkpoint';

/** Replaces OUT/checkpoint/ atomically (written beside it, then renamed), so a kill never leaves half a checkpoint. */
async function saveCheckpoint(out: string, checkpoint: RunCheckpoint): Promise<void> {
  const next = join(out, `${CHECKPOINT_DIR}.next`);
  await rm(next, { recursive: true, force: true });
  await mkdir(next, { recursive: true });
  for (const file of checkpointFiles(checkpoint)) await writeFile(join(next, file.name), file.bytes);
  await rm(join(out, CHECKPOINT_DIR), { recursive: true, force: true });
  await rename(next, join(out, CHECKPOINT_DIR));
}

async function loadCheckpoint(out: string): Promise<RunCheckpoint> {
  const dir = join(out, CHECKPOINT_DIR);
  const [json, tensors] = await Promise.all(
    CHECKPOINT_FILES.map((name) =>
      readFile(join(dir, name)).catch(() => {
        throw new UsageError(
          `${out} has no complete checkpoint (${join(dir, name)} is missing).`,
          'Resume a run folder written by `train --out DIR` after at least one checkpoint (see checkpointEvery).',
        );
      }),
    ),
  );
  return readCheckpoint(json.toString('utf8'), new Uint8Array(tensors));
}

async function writeOutputs(
  out: string,
  config: RunConfig,
  result: RunResult,
  shapes: Map<string, number[]>,
  model: string,
  packLength: number,
  log: string[],
  curves: HistoryView,
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
    // Full precision, for plots and comparisons (a resumed run's include the steps before its resume).
    curves: metricsCurves(curves),
  };
  await writeFile(join(out, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  const files = [
    ...exportPeftAdapter(result.trainables, shapes, config, model),
    detectorSettingsFile({
      threshold: result.threshold,
      packLength,
      batching: config.batching.mode,
      truncation: config.truncation,
      normalize: config.normalize,
      weightFormat: config.weightFormat,
      baseModel: model,
      validation: { rocAuc: result.validation.rocAuc, n: result.validation.n },
    }),
  ];
  for (const file of files) await writeFile(join(out, 'adapter', file.name), file.bytes);
  await writeFile(join(out, 'scores.csv'), scoresCsv(result.scores));
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
        resume: { type: 'string' },
        ...Object.fromEntries(Object.keys(FLAG_FIELDS).map((flag) => [flag, { type: 'string' as const }])),
      },
      HELP,
    );
    const usage = HELP.split('\n')[0];
    const resumeDir = values.resume;
    let out: string;
    let model: string;
    let records: DataRecord[];
    let config: RunConfig;
    let resume: RunCheckpoint | undefined;
    if (resumeDir) {
      out = resumeDir;
      resume = await loadCheckpoint(out);
      const manifest = JSON.parse(await readFile(join(out, 'run.json'), 'utf8')) as RunManifest;
      model = manifest.model;
      records = await readRecords(join(out, manifest.data), 'the run’s data', usage);
      config = resume.config;
      console.log(`resuming ${out} at step ${resume.step} (epoch ${resume.epoch + 1})`);
    } else {
      if (!values.data) throw new UsageError('--data FILE is required.', HELP);
      if (!values.out) throw new UsageError('--out DIR is required.', HELP);
      out = values.out;
      model = String(values.model);
      let fileConfig: unknown;
      if (values.config) {
        try {
          fileConfig = JSON.parse(await readFile(values.config, 'utf8'));
        } catch (error) {
          throw new UsageError(`Cannot read --config ${values.config}: ${(error as Error).message}`, usage);
        }
      }
      config = buildConfig(values, fileConfig, model);
      records = await readRecords(values.data, 'data', usage);
      if (values.valid || values.test) {
        const tag = (split: DataRecord['split']) => (r: DataRecord) => ({ ...r, split });
        records = records.map(tag('train'));
        if (values.valid)
          records.push(...(await readRecords(values.valid, 'validation', usage)).map(tag('validation')));
        if (values.test) records.push(...(await readRecords(values.test, 'test', usage)).map(tag('test')));
      }
    }
    const log: string[] = [];
    const printer = progressPrinter((l) => log.push(l));
    const started = performance.now();

    const prepared = await loadCliModel(model);
    const packLength = Math.min(config.batching.packLength, contextLength(prepared.model));
    const { data, splits, tokenize } = prepareRunData(records, prepared.tokenizer, config, packLength);
    const summary = splits.summary.map((s) => `${s.split} ${s.size} (${s.positives} vulnerable)`).join(', ');
    console.log(
      `data: ${records.length} functions — ${summary}; ${tokenize.truncated} truncated, ${tokenize.dropped} dropped`,
    );
    log.push(`data: ${summary}`);
    if (!resume) {
      // The run folder is self-contained: `train --resume` and `export-recipe` need nothing else.
      await mkdir(out, { recursive: true });
      const withSplits = records.map((r, i) => JSON.stringify({ ...r, split: splits.assignment[i] }));
      await writeFile(join(out, 'data.jsonl'), withSplits.join('\n') + '\n');
      const manifest: RunManifest = { model, data: 'data.jsonl' };
      await writeFile(join(out, 'run.json'), JSON.stringify(manifest, null, 2) + '\n');
      await writeFile(join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n');
    }

    const ctx = await createNodeContext();
    let interrupted = false;
    try {
      const run = await TrainingRun.create(ctx, config, prepared.model, data, printer, {
        resume,
        onCheckpoint: async (checkpoint) => {
          await saveCheckpoint(out, checkpoint);
          if (interrupted) {
            console.log(
              `\ncheckpoint saved at step ${checkpoint.step}; continue with: npm run vulnlab -- train --resume ${out}`,
            );
            process.exit(130);
          }
        },
      });
      // Ctrl-C pauses at the next step boundary, which writes a checkpoint, then exits.
      const onInterrupt = () => {
        interrupted = true;
        run.pause();
      };
      process.once('SIGINT', onInterrupt);
      const shapes = new Map<string, number[]>();
      try {
        const result = await run.run();
        for (const name of result.trainables.keys()) shapes.set(name, run.shapeOf(name));
        await writeOutputs(out, config, result, shapes, model, packLength, log, run.curves.view());
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `test: ROC AUC ${fmt(result.test.rocAuc)}, PR AUC ${fmt(result.test.prAuc)}, F1 ${result.test.atThreshold.f1.toFixed(3)} at the validation threshold ${result.threshold.toFixed(3)} — ${seconds.toFixed(0)} s; outputs in ${out}`,
        );
      } finally {
        process.off('SIGINT', onInterrupt);
        run.destroy();
      }
    } finally {
      ctx.destroy();
    }
  },
};
