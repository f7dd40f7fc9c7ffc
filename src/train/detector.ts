/**
 * A detector: a base model plus an adapter (PEFT LoRA + score head, or all weights of a full
 * finetune) on the GPU, scoring functions for evaluation and scanning. Runs and detectors pack and
 * score through the same code (batches.ts), so a run's scores and its exported adapter's agree.
 */
import {
  baseParamSpecs,
  describeDecoder,
  type DecoderGpu,
  type GpuContext,
  type LoraConfig,
  type LoraTarget,
  type ModelConfig,
  TrainStep,
  type WeightFormat,
} from '../engine/index.ts';
import { DEFAULT_MAX_FUNCTIONS_PER_PACK } from '../data/batching.ts';
import { scoreExamples, type StepPacking } from './batches.ts';
import type { ScoredExample } from './evaluate.ts';
import { explainExamples, type ExampleAttribution, type ExplainOptions } from './explain.ts';
import type { ImportedAdapter } from './export.ts';
import { RunError, type NtpAnswers, type RunExample, type RunModel } from './types.ts';
import { uploadRunModel } from './upload.ts';

export interface DetectorOptions {
  /** Tokens per pack (default: the model's context, at most 1024). Functions must fit (length + 1). */
  packLength?: number;
  /** Packs scored per GPU pass. */
  packs?: number;
  /** Attention across packed functions: 'packed' (block-diagonal) or the paper's. */
  mode?: 'packed' | 'paper';
  /** Storage format of the frozen block linears (LoRA adapters only). */
  weightFormat?: WeightFormat;
  /** The answer tokens, for CAUSAL_LM adapters (prepare.ts ntpAnswers). */
  answers?: NtpAnswers;
}

/**
 * The LoRA tensor names of a model (its family's: `transformer.h.0.attn.c_attn.lora_A.weight`,
 * `model.layers.0.self_attn.q_proj.lora_A.weight`, the token embedding's `…lora_embedding_A`) → their
 * targets.
 */
function loraNames(config: ModelConfig): Map<string, LoraTarget> {
  const d = describeDecoder(config);
  const names = new Map<string, LoraTarget>();
  for (const block of d.blocks) {
    const { attention, mlp } = block;
    const linears = [
      ...attention.projections,
      attention.output,
      ...(mlp.kind === 'gelu' ? [mlp.up, mlp.down] : [mlp.gate, mlp.up, mlp.down]),
    ];
    for (const l of linears) {
      names.set(`${l.module}.lora_A.weight`, l.target);
      names.set(`${l.module}.lora_B.weight`, l.target);
    }
  }
  names.set(d.embeddingLora.a, 'wte');
  names.set(d.embeddingLora.b, 'wte');
  return names;
}

export class Detector {
  private constructor(
    private readonly model: DecoderGpu,
    private readonly step: TrainStep,
    private readonly packing: StepPacking,
    /** Set for next-token (CAUSAL_LM) adapters: examples are prompts (prepare.ts NTP_PROMPT). */
    readonly answers: NtpAnswers | undefined,
  ) {}

  static async create(
    ctx: GpuContext,
    source: RunModel,
    adapter: ImportedAdapter,
    options: DetectorOptions = {},
  ): Promise<Detector> {
    const { tensors } = adapter;
    // A causal-LM adapter (next-token objective) answers " YES"/" NO" after the paper's prompt.
    const answers = tensors.has('score.weight') ? undefined : options.answers;
    if (!tensors.has('score.weight') && (adapter.config.taskType !== 'CAUSAL_LM' || !answers)) {
      throw new RunError(
        'The adapter has no classification head (score.weight).',
        'Import an adapter trained for sequence classification (task_type SEQ_CLS) or, with the paper’s prompt, a CAUSAL_LM one — as the lab and its recipes export.',
      );
    }
    const decoder = describeDecoder(source.config);
    const baseNames = new Set(baseParamSpecs(source.config, false).map((spec) => spec.name));
    const loraTargets = loraNames(source.config);
    const targets = new Set<LoraTarget>();
    const unknown: string[] = [];
    for (const name of tensors.keys()) {
      const target = loraTargets.get(name);
      if (target) targets.add(target);
      else if (name !== decoder.score && !baseNames.has(name)) unknown.push(name);
    }
    if (unknown.length > 0) {
      throw new RunError(
        `The adapter holds tensors this model does not have: ${unknown.slice(0, 3).join(', ')}${unknown.length > 3 ? ` and ${unknown.length - 3} more` : ''}.`,
        `Import an adapter made for ${adapter.config.baseModel || 'this base model'} (${decoder.family === 'gpt_bigcode' ? 'GPT-BigCode names: transformer.h.N.…' : `${decoder.family} names: model.layers.N.…`}).`,
      );
    }
    const packLength = Math.min(options.packLength ?? 1024, decoder.maxPositions);
    const packs = options.packs ?? 1;
    const mode = options.mode ?? 'packed';
    const lora: LoraConfig | null =
      targets.size > 0
        ? {
            r: adapter.config.r,
            alpha: adapter.config.alpha,
            dropout: 0,
            targets: decoder.loraTargets.filter((t) => targets.has(t)),
          }
        : null;
    // Without LoRA tensors the adapter is a full finetune: its base weights replace the model's.
    const model = await uploadRunModel(
      ctx,
      source,
      {
        lora,
        mode,
        objective: answers ? 'ntp' : 'cls',
        trainable: lora ? 'lora' : 'all',
        weightFormat: lora ? (options.weightFormat ?? 'f32') : 'f32',
      },
      tensors,
    );
    try {
      const maxFunctionsPerPack = Math.min(DEFAULT_MAX_FUNCTIONS_PER_PACK, Math.floor(packLength / 2));
      const step = await TrainStep.create(model, {
        packs,
        packLength,
        recompute: true,
        maxFunctions: packs * maxFunctionsPerPack,
      });
      return new Detector(
        model,
        step,
        {
          mode,
          packs,
          packLength,
          maxFunctionsPerPack,
          separatorId: source.separatorId,
          padId: source.padId,
          seed: 0,
        },
        answers,
      );
    } catch (error) {
      model.destroy();
      throw error;
    }
  }

  get packLength(): number {
    return this.packing.packLength;
  }

  /** Probability of "vulnerable" for every example, in input order. */
  score(examples: readonly RunExample[]): Promise<ScoredExample[]> {
    return scoreExamples(this.step, examples, this.packing, this.answers);
  }

  /** Token attributions of each example's score (explain.ts), in input order; nothing is updated. */
  explain(examples: readonly RunExample[], options: ExplainOptions): Promise<ExampleAttribution[]> {
    return explainExamples(this.step, examples, this.packing, options, this.answers);
  }

  destroy(): void {
    this.step.destroy();
    this.model.destroy();
  }
}
