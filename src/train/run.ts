/**
 * A training run: model + data + config, one code path for the browser worker and the Node CLI.
 * Each optimizer step is one command buffer (forward, loss, backward, clip, AdamW); the loss and the
 * gradient norm are the only values read back per step. Settings changed mid-run take effect at the
 * next step and are recorded with that step.
 */
import {
  describeDecoder,
  focalLossRef,
  ModelOptimizer,
  TrainStep,
  type GpuContext,
  type DecoderGpu,
  type DecoderDesc,
  type LoraConfig,
} from '../engine/index.ts';
import type { Batch } from '../data/batching.ts';
import { scoreExamples, stepBatches, toPackedBatch, type StepPacking } from './batches.ts';
import { dataFingerprint, type RunCheckpoint } from './checkpoint.ts';
import { FIELDS, withField, type RunConfig } from './config.ts';
import { chooseThreshold, evaluateScores, type ScoredExample } from './evaluate.ts';
import { RunHistory } from './history.ts';
import { initialTrainables } from './init.ts';
import { learningRate } from './schedule.ts';
import { familyLoraTargets } from './targets.ts';
import {
  RunError,
  type RunData,
  type RunEvent,
  type RunExample,
  type RunHistoryEntry,
  type RunModel,
  type RunResult,
  type RunState,
} from './types.ts';
import { uploadRunModel } from './upload.ts';

export type {
  EvalSplit,
  NtpAnswers,
  RunData,
  RunEvent,
  RunExample,
  RunHistoryEntry,
  RunModel,
  RunResult,
  RunState,
} from './types.ts';
export { RunError } from './types.ts';

export interface RunOptions {
  /** Continue from this checkpoint (same model and training data) instead of starting afresh. */
  resume?: RunCheckpoint;
  /** Receives a checkpoint every `checkpointEvery` steps and whenever the run pauses. */
  onCheckpoint?: (checkpoint: RunCheckpoint) => Promise<void>;
}

/** After this many consecutive non-finite steps the run pauses instead of going on. */
const MAX_NON_FINITE_STEPS = 3;

export class TrainingRun {
  private state: RunState = 'running';
  private wake: (() => void) | undefined;
  private pending: { path: string; value: unknown }[] = [];
  private history: RunHistoryEntry[] = [];
  /** The run's curves, from its first step (a resumed run restores them from its checkpoint). */
  private runCurves = RunHistory.empty();
  private step = 0;
  /** The next batch to train on. */
  private cursor = { epoch: 0, batch: 0 };
  private best: { step: number; auc: number; trainables: Map<string, Float32Array> } | undefined;
  private totals = { trainMs: 0, trainTokens: 0, trainFunctions: 0, nonFinite: 0 };
  /** What the model trains on: the functions, or (next-token objective) prompts with their answer. */
  private readonly trainExamples: RunExample[];

  private constructor(
    private config: RunConfig,
    private readonly model: DecoderGpu,
    private readonly trainStep: TrainStep,
    private readonly optimizer: ModelOptimizer,
    private readonly source: RunModel,
    private readonly data: RunData,
    private readonly sink: (event: RunEvent) => void,
    private readonly options: RunOptions,
  ) {
    const answers = data.answers;
    this.trainExamples = answers
      ? data.train.map((e) => ({
          ...e,
          tokens: Int32Array.from([...e.tokens, e.label === 1 ? answers.yes : answers.no]),
        }))
      : data.train;
  }

  /** Every event goes through here: the curves record it before anyone else sees it. */
  private emit(event: RunEvent): void {
    this.runCurves.record(event);
    this.sink(event);
  }

  /** The run's curves so far (complete for a resumed run: they travel in its checkpoints). */
  get curves(): RunHistory {
    return this.runCurves;
  }

  static async create(
    ctx: GpuContext,
    config: RunConfig,
    source: RunModel,
    data: RunData,
    emit: (event: RunEvent) => void = () => {},
    options: RunOptions = {},
  ): Promise<TrainingRun> {
    const { resume } = options;
    if (resume) {
      if (resume.model !== source.name || resume.data !== dataFingerprint(data)) {
        throw new RunError(
          `The checkpoint belongs to another ${resume.model !== source.name ? `model (${resume.model})` : 'training set'}.`,
          'Resume with the model and dataset the run started with, or start a new run.',
        );
      }
      config = resume.config;
    }
    const cls = config.objective === 'cls';
    if (!cls && !data.answers) {
      throw new RunError(
        'The next-token objective needs its data prepared with the answer tokens.',
        'Prepare the data with prepareRunData and objective "ntp".',
      );
    }
    for (const split of ['train', 'validation'] as const) {
      const labels = new Set(data[split].map((e) => e.label));
      if (labels.size < 2) {
        throw new RunError(
          `The ${split} split has ${data[split].length === 0 ? 'no functions' : 'one class only'}: ROC AUC is undefined.`,
          'Use a dataset with vulnerable and non-vulnerable functions in every split, or change the split.',
        );
      }
    }
    const decoder = describeDecoder(source.config);
    const packLength = Math.min(config.batching.packLength, decoder.maxPositions);
    const lora: LoraConfig | null =
      config.trainable === 'lora'
        ? {
            r: config.lora.r,
            alpha: config.lora.alpha,
            dropout: config.lora.dropout,
            // The model family's modules (GPT-BigCode names stand for the same roles in the others).
            targets: familyLoraTargets(config.lora.targets, source.config),
          }
        : null;
    const extra = initialTrainables(source.config, lora, cls, config.seed);
    for (const name of extra.keys()) if (source.weights.has(name)) extra.delete(name);
    for (const [name, saved] of resume?.trainables ?? []) extra.set(name, saved);
    const model = await uploadRunModel(
      ctx,
      source,
      {
        lora,
        mode: config.batching.mode === 'paper' ? 'paper' : 'packed',
        objective: config.objective,
        trainable: config.trainable,
        weightFormat: config.trainable === 'all' ? 'f32' : config.weightFormat,
        seed: config.seed,
      },
      extra,
    );
    try {
      const packs = config.batching.packsPerStep;
      const trainStep = await TrainStep.create(model, {
        packs,
        packLength,
        recompute: config.recompute,
        maxFunctions: packs * Math.min(config.batching.maxFunctionsPerPack, Math.floor(packLength / 2)),
      });
      if (cls) trainStep.setFocal(focalOf(config));
      const optimizer = await ModelOptimizer.create(model, {
        lr: config.optimizer.lr,
        betas: [config.optimizer.beta1, config.optimizer.beta2],
        eps: config.optimizer.eps,
        weight_decay: config.optimizer.weightDecay,
        max_grad_norm: config.optimizer.maxGradNorm,
        accumulate: config.batching.accumulate,
        lrScales: embeddingLrScales(config, decoder),
      });
      const run = new TrainingRun(config, model, trainStep, optimizer, source, data, emit, options);
      if (resume) run.restore(resume);
      return run;
    } catch (error) {
      model.destroy();
      throw error;
    }
  }

  /** Shape of a trainable tensor (for exports). */
  shapeOf(name: string): number[] {
    return this.model.shape(name);
  }

  get packLength(): number {
    return this.trainStep.shape.packLength;
  }

  /** Pauses before the next step. */
  pause(): void {
    if (this.state === 'running') this.setState('paused');
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.setState('running');
    this.wake?.();
  }

  /** Ends the run after the current step; the final evaluation still happens. */
  stop(): void {
    if (this.state === 'finished' || this.state === 'stopped') return;
    this.setState('stopped');
    this.wake?.();
  }

  /** Changes a live setting (validated now, applied from the next optimizer step). */
  update(path: string, value: unknown): void {
    if (!FIELDS.find((f) => f.path === path)?.live) {
      const live = FIELDS.filter((f) => f.live).map((f) => f.path);
      throw new RunError(`${path} cannot change during a run.`, `Settings that can: ${live.join(', ')}.`);
    }
    if (path.startsWith('loss.') && this.config.objective !== 'cls') {
      throw new RunError(
        `${path} belongs to the classification loss; this run trains on next-token prediction.`,
        'Change the learning rate, gradient clipping or evaluation interval instead.',
      );
    }
    withField(this.config, path, value);
    this.pending.push({ path, value });
  }

  private setState(state: RunState, reason?: string): void {
    this.state = state;
    this.emit({ type: 'state', step: this.step, state, reason });
  }

  private applyPending(): void {
    for (const { path, value } of this.pending) {
      this.config = withField(this.config, path, value);
      if (path.startsWith('loss.') && this.config.objective === 'cls') {
        this.trainStep.setFocal(focalOf(this.config));
      }
      if (path === 'optimizer.maxGradNorm') this.optimizer.setMaxGradNorm(this.config.optimizer.maxGradNorm);
      this.history.push({ step: this.step + 1, path, value });
      this.emit({ type: 'change', step: this.step + 1, path, value });
    }
    this.pending = [];
  }

  private get packing(): StepPacking {
    const { batching, seed } = this.config;
    return {
      mode: batching.mode,
      packs: this.trainStep.shape.packs,
      packLength: this.packLength,
      maxFunctionsPerPack: batching.maxFunctionsPerPack,
      separatorId: this.source.separatorId,
      padId: this.source.padId,
      seed,
    };
  }

  private batchesFor(epoch: number): Batch[] {
    return stepBatches(this.trainExamples, this.packing, epoch, true);
  }

  /** Probability of "vulnerable" for every function of a split (forward only). */
  score(examples: readonly RunExample[]): Promise<ScoredExample[]> {
    return scoreExamples(this.trainStep, examples, this.packing, this.data.answers);
  }

  private restore(checkpoint: RunCheckpoint): void {
    this.step = checkpoint.step;
    this.cursor = { epoch: checkpoint.epoch, batch: checkpoint.batch };
    this.trainStep.dropoutStep = checkpoint.dropoutStep;
    this.optimizer.restoreState(checkpoint.optimizer);
    this.best = checkpoint.best;
    this.history = [...checkpoint.history];
    this.runCurves = checkpoint.curves ? RunHistory.deserialize(checkpoint.curves) : RunHistory.empty();
    this.totals = { ...checkpoint.totals };
  }

  private async checkpoint(): Promise<void> {
    if (!this.options.onCheckpoint) return;
    await this.options.onCheckpoint({
      config: this.config,
      model: this.source.name,
      data: dataFingerprint(this.data),
      step: this.step,
      epoch: this.cursor.epoch,
      batch: this.cursor.batch,
      dropoutStep: this.trainStep.dropoutStep,
      optimizer: await this.optimizer.readState(),
      trainables: await this.readTrainables(),
      best: this.best,
      history: this.history,
      curves: this.runCurves.serialize(),
      totals: { ...this.totals },
    });
    this.emit({ type: 'checkpoint', step: this.step, epoch: this.cursor.epoch });
  }

  /**
   * The loss the run optimizes, on scored examples: focal (or CE) with the sample and class weights,
   * the mean over functions as in training — from each score's logit margin log(p / (1 − p)).
   */
  private lossOf(scored: readonly ScoredExample[]): number {
    const logits = new Float64Array(scored.length * 2);
    const weights = new Float64Array(scored.length);
    const byIndex = new Map([...this.data.validation, ...this.data.test].map((e) => [e.exampleIndex, e]));
    scored.forEach((s, i) => {
      // Clamped: a saturated score (p = 0 or 1 in float64) keeps a finite margin of about ±37.
      const p = Math.min(Math.max(s.score, 1e-16), 1 - 1e-16);
      logits[2 * i + 1] = Math.log(p) - Math.log1p(-p);
      const weight = byIndex.get(s.exampleIndex)?.weight ?? 1;
      weights[i] = weight * (s.label === 1 ? this.config.loss.positiveWeight : 1);
    });
    const labels = scored.map((s) => s.label);
    return focalLossRef(logits, labels, weights, focalOf(this.config)).loss;
  }

  private async readTrainables(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const name of this.model.trainableNames) out.set(name, await this.model.readParam(name));
    return out;
  }

  private async waitWhilePaused(): Promise<void> {
    while (this.state === 'paused') await new Promise<void>((resolve) => (this.wake = resolve));
  }

  async run(): Promise<RunResult> {
    const { epochs } = this.config;
    const firstEpoch = this.batchesFor(0);
    // Optimizer steps (each `accumulate` micro-batches); the schedule and every counter use them.
    const stepsPerEpoch = Math.ceil(firstEpoch.length / this.optimizer.accumulate);
    const totalSteps = stepsPerEpoch * epochs;
    const slots = firstEpoch.length * this.trainStep.T;
    const real = firstEpoch.reduce((sum, b) => sum + b.realTokens, 0);
    this.emit({
      type: 'started',
      totalSteps,
      stepsPerEpoch,
      trainFunctions: this.data.train.length,
      wastedShare: slots ? 1 - real / slots : 0,
      resumedAt: this.step,
    });
    this.setState('running');
    const gpuBytes =
      this.trainStep.activationBytes +
      this.model.paramBytes +
      this.model.gradBytes +
      this.optimizer.momentBytes +
      this.optimizer.accumulatorBytes;
    const totals = this.totals;
    const evaluateValidation = async (epoch: number) => {
      const scored = await this.score(this.data.validation);
      const threshold = chooseThreshold(scored);
      const metrics = evaluateScores(scored, threshold);
      const loss = this.lossOf(scored);
      this.emit({ type: 'eval', step: this.step, epoch, split: 'validation', metrics, threshold, loss });
      const auc = metrics.rocAuc ?? -Infinity;
      if (!this.best || auc > this.best.auc) {
        this.best = { step: this.step, auc, trainables: await this.readTrainables() };
      }
    };

    epochs: for (let epoch = this.cursor.epoch; epoch < epochs; epoch++) {
      const batches = epoch === 0 ? firstEpoch : this.batchesFor(epoch);
      const perStep = this.optimizer.accumulate;
      for (let index = this.cursor.batch; index < batches.length; index += perStep) {
        // One optimizer step: `perStep` micro-batches (fewer at the end of an epoch), their gradients averaged.
        const group = batches.slice(index, index + perStep);
        if (this.state === 'paused') {
          // A paused run can be resumed after a reload or a crash, so its state is saved first.
          await this.checkpoint();
          await this.waitWhilePaused();
        }
        if (this.state === 'stopped') break epochs;
        this.applyPending();
        const lr = learningRate(this.config.schedule, this.config.optimizer.lr, this.step, totalSteps);
        const start = performance.now();
        this.optimizer.nextStep(lr);
        let loss = 0;
        for (const [k, batch] of group.entries()) {
          this.trainStep.setBatch(
            toPackedBatch(batch, this.trainExamples, this.packing, this.config.loss.positiveWeight),
          );
          await this.trainStep.run(this.optimizer.microDispatches(k, group.length));
          loss += (await this.trainStep.readLoss()) / group.length;
        }
        const { norm, nonFinite: skipped } = await this.optimizer.readGradNorm();
        const ms = performance.now() - start;
        const tokens = group.reduce((sum, b) => sum + b.realTokens, 0);
        const functions = group.reduce((sum, b) => sum + b.functions.length, 0);
        this.step++;
        this.cursor = { epoch, batch: index + group.length };
        totals.trainMs += ms;
        totals.trainTokens += tokens;
        totals.trainFunctions += functions;
        if (skipped || !Number.isFinite(loss)) {
          totals.nonFinite++;
          this.emit({
            type: 'warning',
            step: this.step,
            message: `Step ${this.step} had a non-finite loss or gradient; its update was skipped.`,
          });
          if (totals.nonFinite >= MAX_NON_FINITE_STEPS) {
            this.setState(
              'paused',
              `${totals.nonFinite} steps in a row were non-finite. Lower the learning rate (or raise gradient clipping) and resume.`,
            );
          }
        } else totals.nonFinite = 0;
        this.emit({
          type: 'step',
          step: this.step,
          epoch,
          loss,
          lr,
          gradNorm: norm,
          tokensPerSecond: (tokens / ms) * 1000,
          examplesPerSecond: (functions / ms) * 1000,
          gpuBytes,
          elapsedMs: totals.trainMs,
        });
        const { evalEvery, checkpointEvery } = this.config;
        if (evalEvery > 0 && this.step % evalEvery === 0) await evaluateValidation(epoch);
        if (checkpointEvery > 0 && this.step % checkpointEvery === 0) await this.checkpoint();
      }
      if (this.config.evalEvery === 0) await evaluateValidation(epoch);
      this.cursor = { epoch: epoch + 1, batch: 0 };
    }
    if (!this.best || (this.config.evalEvery > 0 && this.step % this.config.evalEvery !== 0)) {
      await evaluateValidation(epochs - 1);
    }
    const chosen = this.best!;
    for (const [name, values] of chosen.trainables) this.model.writeParam(name, values);
    const validation = await this.score(this.data.validation);
    const threshold = chooseThreshold(validation);
    const test = await this.score(this.data.test);
    const result: RunResult = {
      steps: this.step,
      bestStep: chosen.step,
      threshold,
      validation: evaluateScores(validation, threshold, { intervals: true, seed: this.config.seed }),
      test: evaluateScores(test, threshold, { intervals: true, seed: this.config.seed }),
      scores: [
        { split: 'validation', examples: validation },
        { split: 'test', examples: test },
      ],
      trainables: chosen.trainables,
      throughput: {
        tokensPerSecond: totals.trainMs ? (totals.trainTokens / totals.trainMs) * 1000 : 0,
        examplesPerSecond: totals.trainMs ? (totals.trainFunctions / totals.trainMs) * 1000 : 0,
        trainMs: totals.trainMs,
      },
      history: this.history,
    };
    this.emit({
      type: 'eval',
      step: this.step,
      epoch: epochs - 1,
      split: 'test',
      metrics: result.test,
      threshold,
      loss: this.lossOf(test),
    });
    if (this.state !== 'stopped') this.setState('finished');
    return result;
  }

  destroy(): void {
    this.optimizer.destroy();
    this.trainStep.destroy();
    this.model.destroy();
  }
}

/** The token embedding's adapter trains at its own learning rate when the config gives one. */
function embeddingLrScales(config: RunConfig, decoder: DecoderDesc): Map<string, number> | undefined {
  const { embeddingLr, lr } = config.optimizer;
  if (embeddingLr === null || !config.lora.targets.includes('wte')) return undefined;
  const { a, b } = decoder.embeddingLora;
  return new Map([a, b].map((name) => [name, embeddingLr / lr]));
}

function focalOf(config: RunConfig) {
  return config.loss.kind === 'ce'
    ? { gamma: 0, alpha: config.loss.alpha }
    : { gamma: config.loss.gamma, alpha: config.loss.alpha };
}
