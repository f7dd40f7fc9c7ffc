/**
 * The run configuration: one JSON document, every field documented with the paper's default, and a
 * validator that names the field, the value and what is accepted. The same field table drives the CLI
 * flags and the lab's hyperparameter explanations.
 */
import { VulnLabError } from '../shared/errors.ts';
import { LINEAR_TARGETS, LORA_TARGETS, type LoraTarget, type Trainable } from '../engine/model/config.ts';
import { WEIGHT_FORMATS, type WeightFormat } from '../engine/quant.ts';
import type { Objective } from '../shared/batch.ts';

export type { Objective } from '../shared/batch.ts';
export type LossKind = 'focal' | 'ce';
export type Batching = 'packed' | 'padded' | 'paper';
export type { LoraTarget, Trainable, WeightFormat };
/** GPT-BigCode's targets (the lab's target checkboxes). */
export { LORA_TARGETS };

/**
 * LoRA targets across model families. A run config names targets before the model is known (the
 * paper's default is GPT-BigCode's four block linears), so a target of another family is read by its
 * role in a block: GPT-BigCode's fused attn.c_attn is the Llama family's q/k/v projections, attn.c_proj
 * its o_proj, mlp.c_fc the gate and up projections (StarCoder2: its own c_fc), mlp.c_proj the down
 * projection (StarCoder2: c_proj); and the other way round. `wte` is every family's token embedding.
 * The trainer (targets.ts) and the lab's form (ui/loraTargets.ts) both map through `mapLoraTargets`.
 */
const TARGET_ROLE: Record<
  LoraTarget,
  'qkv' | 'attention output' | 'MLP input' | 'MLP output' | 'token embedding'
> = {
  'attn.c_attn': 'qkv',
  'attn.c_proj': 'attention output',
  'mlp.c_fc': 'MLP input',
  'mlp.c_proj': 'MLP output',
  wte: 'token embedding',
  'self_attn.q_proj': 'qkv',
  'self_attn.k_proj': 'qkv',
  'self_attn.v_proj': 'qkv',
  'self_attn.o_proj': 'attention output',
  'mlp.gate_proj': 'MLP input',
  'mlp.up_proj': 'MLP input',
  'mlp.down_proj': 'MLP output',
};

/** What `lora.targets` may list: every family's targets (GPT-BigCode's first). */
export const ALL_LORA_TARGETS = Object.keys(TARGET_ROLE) as readonly LoraTarget[];

export interface TargetMapping {
  /** The targets in the model's own names and order. */
  targets: LoraTarget[];
  /** Each requested target the model does not have, and what it stands for on this model. */
  changes: { from: LoraTarget; to: LoraTarget[] }[];
}

/**
 * `requested` in the names of a model that offers `offered` (its family's targets, in its order): a
 * target it has stays; another family's stands for every target of the model with the same role.
 */
export function mapLoraTargets(
  requested: readonly LoraTarget[],
  offered: readonly LoraTarget[],
): TargetMapping {
  const chosen = new Set<LoraTarget>();
  const changes: TargetMapping['changes'] = [];
  for (const target of requested) {
    if (offered.includes(target)) chosen.add(target);
    else {
      const to = offered.filter((o) => TARGET_ROLE[o] === TARGET_ROLE[target]);
      to.forEach((o) => chosen.add(o));
      changes.push({ from: target, to });
    }
  }
  return { targets: offered.filter((o) => chosen.has(o)), changes };
}

export interface RunConfig {
  model: string;
  weightFormat: WeightFormat;
  objective: Objective;
  trainable: Trainable;
  loss: { kind: LossKind; gamma: number; alpha: number | null; positiveWeight: number };
  lora: { r: number; alpha: number; dropout: number; targets: LoraTarget[] };
  optimizer: {
    lr: number;
    embeddingLr: number | null;
    weightDecay: number;
    beta1: number;
    beta2: number;
    eps: number;
    maxGradNorm: number;
  };
  schedule: { kind: 'cosine' | 'constant' | 'linear'; warmupRatio: number };
  batching: {
    mode: Batching;
    packLength: number;
    maxFunctionsPerPack: number;
    packsPerStep: number;
    accumulate: number;
  };
  recompute: boolean;
  epochs: number;
  evalEvery: number;
  checkpointEvery: number;
  truncation: 'head' | 'tail' | 'drop';
  normalize: { stripComments: boolean; collapseWhitespace: boolean };
  seed: number;
}

export interface FieldSpec {
  /** Dotted path in RunConfig, e.g. "optimizer.lr". */
  path: string;
  /** One line for the lab and `--help`. */
  description: string;
  /** The paper's setting, or the lab's where the paper has none. */
  default: unknown;
  check: (value: unknown) => string | undefined;
  /** Changeable while a run is going (applied from the next optimizer step). */
  live?: boolean;
}

const oneOf =
  (...values: readonly unknown[]) =>
  (v: unknown) =>
    values.includes(v) ? undefined : `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
const number =
  (min: number, max: number, { integer = false, exclusiveMin = false } = {}) =>
  (v: unknown) => {
    const ok =
      typeof v === 'number' &&
      Number.isFinite(v) &&
      (exclusiveMin ? v > min : v >= min) &&
      v <= max &&
      (!integer || Number.isInteger(v));
    return ok
      ? undefined
      : `${integer ? 'an integer' : 'a number'} in ${exclusiveMin ? '(' : '['}${min}, ${max}]`;
  };
const boolean = (v: unknown) => (typeof v === 'boolean' ? undefined : 'true or false');
const TARGETS: readonly LoraTarget[] = ALL_LORA_TARGETS;

export const FIELDS: FieldSpec[] = [
  {
    path: 'model',
    description: '"demo", a Hugging Face repo id (e.g. WizardLMTeam/WizardCoder-1B-V1.0) or a local folder',
    default: 'demo',
    check: (v) => (typeof v === 'string' && v.length > 0 ? undefined : 'a non-empty string'),
  },
  {
    path: 'weightFormat',
    description: 'storage of the frozen base weights on the GPU (the paper loads them in 8-bit)',
    default: 'q8_0',
    check: oneOf(...WEIGHT_FORMATS),
  },
  {
    path: 'objective',
    description: 'cls: classification head on each function’s last token; ntp: next-token prediction',
    default: 'cls',
    check: oneOf('cls', 'ntp'),
  },
  {
    path: 'trainable',
    description: 'lora: adapters + head (the paper); all: every weight (small models only)',
    default: 'lora',
    check: oneOf('lora', 'all'),
  },
  {
    path: 'loss.kind',
    description: 'focal loss (down-weights easy examples) or weighted cross-entropy',
    default: 'focal',
    check: oneOf('focal', 'ce'),
  },
  {
    path: 'loss.gamma',
    description: 'focal γ: how strongly easy examples are down-weighted (paper: 1; 0 = cross-entropy)',
    default: 1,
    check: number(0, 10),
    live: true,
  },
  {
    path: 'loss.alpha',
    description: 'focal α: weight of the vulnerable class (null = none, as in the paper)',
    default: null,
    check: (v) => (v === null ? undefined : number(0, 1)(v)),
    live: true,
  },
  {
    path: 'loss.positiveWeight',
    description: 'extra weight of vulnerable examples (the paper weights its informative part 3.0)',
    default: 1,
    check: number(0, 1000, { exclusiveMin: true }),
    live: true,
  },
  {
    path: 'lora.r',
    description: 'LoRA rank: size of the low-rank update (paper: 8)',
    default: 8,
    check: number(1, 256, { integer: true }),
  },
  {
    path: 'lora.alpha',
    description: 'LoRA α: the update is scaled by α/r (paper: 16 at r = 8, scaling 2)',
    default: 16,
    check: number(0, 4096, { exclusiveMin: true }),
  },
  {
    path: 'lora.dropout',
    description: 'dropout on the LoRA input (paper: 0.05)',
    default: 0.05,
    check: number(0, 0.9),
  },
  {
    path: 'lora.targets',
    description:
      'modules that get adapters: the block linears (paper: all four; GPT-BigCode names adapt the same roles of Llama, Qwen2, StarCoder2: q/k/v, o, gate/up, down) and wte, the token embedding',
    default: LINEAR_TARGETS,
    check: (v) =>
      Array.isArray(v) && v.length > 0 && v.every((t) => TARGETS.includes(t)) && new Set(v).size === v.length
        ? undefined
        : `a non-empty list of distinct values from ${TARGETS.join(', ')}`,
  },
  {
    path: 'optimizer.lr',
    description: 'AdamW peak learning rate (paper: 1e-4)',
    default: 1e-4,
    check: number(0, 1, { exclusiveMin: true }),
    live: true,
  },
  {
    path: 'optimizer.embeddingLr',
    description:
      'peak learning rate of the token embedding’s adapter (LoRA target wte; null = optimizer.lr), scheduled and changed with lr',
    default: null,
    check: (v) => (v === null ? undefined : number(0, 1, { exclusiveMin: true })(v)),
  },
  {
    path: 'optimizer.weightDecay',
    description: 'AdamW decoupled weight decay (paper: 0.05)',
    default: 0.05,
    check: number(0, 1),
  },
  {
    path: 'optimizer.beta1',
    description: 'AdamW β1 (decay of the gradient mean)',
    default: 0.9,
    check: number(0, 0.99999),
  },
  {
    path: 'optimizer.beta2',
    description: 'AdamW β2 (decay of the squared gradient mean)',
    default: 0.999,
    check: number(0, 0.99999999),
  },
  {
    path: 'optimizer.eps',
    description: 'AdamW ε (keeps the update finite)',
    default: 1e-8,
    check: number(0, 1, { exclusiveMin: true }),
  },
  {
    path: 'optimizer.maxGradNorm',
    description: 'global gradient-norm clipping (paper: 1.0; 0 = off)',
    default: 1,
    check: number(0, 1e6),
    live: true,
  },
  {
    path: 'schedule.kind',
    description: 'learning-rate schedule after warmup (paper: cosine)',
    default: 'cosine',
    check: oneOf('cosine', 'linear', 'constant'),
  },
  {
    path: 'schedule.warmupRatio',
    description: 'share of all steps spent warming the learning rate up from 0',
    default: 0.03,
    check: number(0, 0.5),
  },
  {
    path: 'batching.mode',
    description:
      'packed: functions share sequences with masks between them; padded: one per row; paper: packed without masks',
    default: 'packed',
    check: oneOf('packed', 'padded', 'paper'),
  },
  {
    path: 'batching.packLength',
    description: 'tokens per packed sequence (paper: 2048; smaller for the demo model)',
    default: 2048,
    check: number(16, 32768, { integer: true }),
  },
  {
    path: 'batching.maxFunctionsPerPack',
    description: 'cap on functions in one sequence (paper: 200)',
    default: 200,
    check: number(1, 10000, { integer: true }),
  },
  {
    path: 'batching.packsPerStep',
    description: 'sequences per micro-batch',
    default: 1,
    check: number(1, 1024, { integer: true }),
  },
  {
    path: 'batching.accumulate',
    description: 'micro-batches per optimizer step (gradient accumulation: the mean of their gradients)',
    default: 1,
    check: number(1, 1024, { integer: true }),
  },
  {
    path: 'recompute',
    description: 'recompute activations in backward (gradient checkpointing) to save memory',
    default: true,
    check: boolean,
  },
  {
    path: 'epochs',
    description: 'passes over the training split',
    default: 3,
    check: number(1, 1000, { integer: true }),
  },
  {
    path: 'evalEvery',
    description: 'optimizer steps between validation evaluations (0 = once per epoch)',
    default: 0,
    check: number(0, 1e9, { integer: true }),
    live: true,
  },
  {
    path: 'checkpointEvery',
    description: 'optimizer steps between checkpoints a run can resume from (0 = only when paused)',
    default: 50,
    check: number(0, 1e9, { integer: true }),
    live: true,
  },
  {
    path: 'truncation',
    description: 'functions longer than the context: keep the head, keep the tail, or drop them',
    default: 'head',
    check: oneOf('head', 'tail', 'drop'),
  },
  {
    path: 'normalize.stripComments',
    description: 'remove comments before tokenizing',
    default: false,
    check: boolean,
  },
  {
    path: 'normalize.collapseWhitespace',
    description: 'collapse runs of whitespace (the paper’s option)',
    default: false,
    check: boolean,
  },
  {
    path: 'seed',
    description: 'seed for shuffles, dropout and initialization',
    default: 42,
    check: number(0, 2 ** 32 - 1, { integer: true }),
  },
];

export class ConfigError extends VulnLabError {
  constructor(readonly problems: { path: string; message: string }[]) {
    super(
      'bad-input',
      `Invalid run config: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      'Fix the named fields (see the field list in `npm run vulnlab -- train --help`).',
    );
  }
}

function getPath(object: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>(
      (o, key) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[key] : undefined),
      object,
    );
}

function setPath(object: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = object;
  for (const key of keys.slice(0, -1)) {
    if (!node[key] || typeof node[key] !== 'object') node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

export function defaultConfig(): RunConfig {
  const config: Record<string, unknown> = {};
  for (const field of FIELDS) setPath(config, field.path, structuredClone(field.default));
  return config as unknown as RunConfig;
}

/** Paths of every leaf in a (partial) config object, to find unknown fields. */
function leafPaths(object: unknown, prefix = ''): string[] {
  if (!object || typeof object !== 'object' || Array.isArray(object)) return [prefix];
  return Object.entries(object).flatMap(([key, value]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    return FIELDS.some((f) => f.path === path) ? [path] : leafPaths(value, path);
  });
}

/**
 * Fills the defaults into a partial config and validates every field; throws ConfigError listing
 * each wrong field with what is accepted (unknown fields included, to catch typos).
 */
export function resolveConfig(partial: unknown = {}): RunConfig {
  if (!partial || typeof partial !== 'object' || Array.isArray(partial)) {
    throw new ConfigError([{ path: '(root)', message: 'expected a JSON object' }]);
  }
  const problems: { path: string; message: string }[] = [];
  for (const path of leafPaths(partial)) {
    if (!FIELDS.some((f) => f.path === path)) problems.push({ path, message: 'unknown field' });
  }
  const config = defaultConfig() as unknown as Record<string, unknown>;
  for (const field of FIELDS) {
    const value = getPath(partial, field.path);
    if (value === undefined) continue;
    const expected = field.check(value);
    if (expected)
      problems.push({ path: field.path, message: `got ${JSON.stringify(value)}, expected ${expected}` });
    else setPath(config, field.path, value);
  }
  if (problems.length) throw new ConfigError(problems);
  return config as unknown as RunConfig;
}

/** Deep merge of plain objects (arrays and values replace), for layering partial configs. */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object'
        ? merge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

/**
 * A run config for a model: the paper's defaults, then the model preset's own defaults (a tiny
 * model needs a higher learning rate than WizardCoder-15B), then what the user set.
 */
export function configForModel(
  modelDefaults: Record<string, unknown> | undefined,
  partial: unknown = {},
): RunConfig {
  if (!partial || typeof partial !== 'object' || Array.isArray(partial)) return resolveConfig(partial);
  return resolveConfig(merge(modelDefaults ?? {}, partial as Record<string, unknown>));
}

export function getField(config: RunConfig, path: string): unknown {
  return getPath(config, path);
}

/** Returns a copy of the config with one field changed (validated). */
export function withField(config: RunConfig, path: string, value: unknown): RunConfig {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  setPath(copy, path, value);
  return resolveConfig(copy);
}
