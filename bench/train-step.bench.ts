/**
 * Training-step throughput: one LoRA step (forward, focal loss, backward, clipping, AdamW) on a demo-sized
 * GPT-BigCode, ours (WGSL) side by side with a faithful tfjs implementation of the same step
 * (bench/peers/tfjs-gptbigcode.ts, checked against the PyTorch fixtures in tests/peers/) on the same adapter.
 */
import type { GpuContext } from '../src/engine/gpu/index.ts';
import type { GptBigCodeConfig, LoraTarget } from '../src/engine/model/config.ts';
import { GptBigCodeGpu, TrainStep } from '../src/engine/model/gpt-bigcode.ts';
import { ModelOptimizer } from '../src/engine/model/optimizer.ts';
import { Rng } from '../src/engine/random.ts';
import { timeMedian, type Bench, type BenchRow } from './harness.ts';
import { TfjsTrainStep, type PeerSpec } from './peers/tfjs-gptbigcode.ts';

/** One benchmark workload: model, weights, LoRA, one batch and the optimizer, in the fixture layout. */
export interface TrainStepSetup {
  label: string;
  /** Model + batch + optimizer; `spec.params` holds every tensor (base weights, score head, LoRA A/B). */
  spec: PeerSpec;
  /** Tokens per step: packs × pack length (padding included; the demo batch has none). */
  tokens: number;
}

/** A ready training step: `step()` runs one full step and resolves with its loss (read back). */
export interface TrainStepRunner {
  step(): Promise<number>;
  dispose(): void;
}

/**
 * Our WGSL training step on the same workload: forward, focal loss, backward, clip and AdamW in one
 * submit; `step()` resolves with the loss read back, so both sides pay the same sync.
 */
export async function oursTrainStep(ctx: GpuContext, setup: TrainStepSetup): Promise<TrainStepRunner> {
  const { spec } = setup;
  const values = new Map(Object.entries(spec.params).map(([name, t]) => [name, t.data]));
  const lora = spec.lora && {
    ...spec.lora,
    dropout: spec.lora.dropout ?? 0,
    targets: spec.lora.targets as LoraTarget[],
  };
  const model = await GptBigCodeGpu.create(
    ctx,
    {
      config: spec.config as GptBigCodeConfig,
      lora,
      mode: spec.mode,
      objective: spec.objective,
      trainable: spec.trainable ?? 'lora',
    },
    values,
  );
  const step = await TrainStep.create(model, {
    packs: spec.batch.input_ids.length,
    packLength: spec.batch.input_ids[0].length,
    maxFunctions: spec.batch.functions.length,
  });
  const [beta1, beta2] = spec.optimizer.betas;
  const optimizer = await ModelOptimizer.create(model, {
    lr: spec.optimizer.lr,
    betas: [beta1, beta2],
    eps: spec.optimizer.eps,
    weight_decay: spec.optimizer.weight_decay,
    max_grad_norm: spec.optimizer.max_grad_norm,
  });
  step.setBatch({
    inputIds: spec.batch.input_ids,
    segmentIds: spec.batch.segment_ids,
    positionIds: spec.batch.position_ids,
    functions: spec.batch.functions,
  });
  if (spec.focal) step.setFocal(spec.focal);
  return {
    async step() {
      optimizer.nextStep();
      await step.run(optimizer.dispatches);
      return step.readLoss();
    },
    dispose() {
      optimizer.destroy();
      step.destroy();
      model.destroy();
    },
  };
}

export function demoTrainStepSetup(quick: boolean, seed = 1): TrainStepSetup {
  const packLen = quick ? 128 : 512;
  // code tokens per function; each is followed by one EOS, and the pack is exactly full
  const lengths = quick ? [30, 17, 25, 28, 23] : [140, 61, 97, 120, 89];
  const config = {
    vocab_size: 4000,
    n_embd: 128,
    n_layer: quick ? 2 : 4,
    n_head: 4,
    n_inner: 512,
    n_positions: 512,
    multi_query: true,
    activation_function: 'gelu_pytorch_tanh',
    layer_norm_epsilon: 1e-5,
  };
  const lora = {
    r: 8,
    alpha: 16,
    targets: ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'],
    dropout: 0,
  };
  return {
    label: `${config.n_layer}L d${config.n_embd} T=${packLen}`,
    spec: randomSpec(config, lora, lengths, packLen, seed),
    tokens: packLen,
  };
}

function randomSpec(
  config: PeerSpec['config'] & { n_inner: number },
  lora: NonNullable<PeerSpec['lora']>,
  lengths: number[],
  packLen: number,
  seed: number,
): PeerSpec {
  const rng = new Rng(seed);
  const D = config.n_embd;
  const hd = D / config.n_head;
  const params: PeerSpec['params'] = {};
  const tensor = (name: string, shape: number[], fill: (i: number) => number) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = fill(i);
    params[name] = { shape, data };
  };
  const normal = (std: number) => () => std * rng.normal();
  const shapes: Record<string, [number, number]> = {
    'attn.c_attn': [D + 2 * hd, D],
    'attn.c_proj': [D, D],
    'mlp.c_fc': [config.n_inner, D],
    'mlp.c_proj': [D, config.n_inner],
  };
  tensor('transformer.wte.weight', [config.vocab_size, D], normal(0.02));
  tensor('transformer.wpe.weight', [config.n_positions, D], normal(0.02));
  for (let layer = 0; layer < config.n_layer; layer++) {
    const pre = `transformer.h.${layer}.`;
    for (const [ln, modules] of [
      ['ln_1', ['attn.c_attn', 'attn.c_proj']],
      ['ln_2', ['mlp.c_fc', 'mlp.c_proj']],
    ] as const) {
      tensor(`${pre}${ln}.weight`, [D], () => 1);
      tensor(`${pre}${ln}.bias`, [D], () => 0);
      for (const module of modules) {
        tensor(`${pre}${module}.weight`, shapes[module], normal(0.02));
        tensor(`${pre}${module}.bias`, [shapes[module][0]], () => 0);
      }
    }
  }
  tensor('transformer.ln_f.weight', [D], () => 1);
  tensor('transformer.ln_f.bias', [D], () => 0);
  tensor('score.weight', [2, D], normal(0.02));
  for (let layer = 0; layer < config.n_layer; layer++) {
    for (const module of lora.targets) {
      const [out, inp] = shapes[module];
      const name = `transformer.h.${layer}.${module}`;
      tensor(`${name}.lora_A.weight`, [lora.r, inp], normal(1 / Math.sqrt(inp)));
      // PEFT starts B at zero; small random values give the same work and non-zero gradients everywhere
      tensor(`${name}.lora_B.weight`, [out, lora.r], normal(0.01));
    }
  }

  const eos = 0;
  const ids: number[] = [];
  const segments: number[] = [];
  const positions: number[] = [];
  const functions: PeerSpec['batch']['functions'] = [];
  lengths.forEach((n, s) => {
    for (let t = 0; t <= n; t++) {
      ids.push(t < n ? 1 + rng.int(config.vocab_size - 2) : eos);
      segments.push(s);
      positions.push(t);
    }
    functions.push({ pack: 0, last: ids.length - 2, label: s % 2, weight: s % 2 ? 3 : 1 });
  });
  if (ids.length !== packLen) throw new Error(`pack holds ${ids.length} tokens, expected ${packLen}`);

  return {
    config,
    lora,
    trainable: 'lora',
    objective: 'cls',
    focal: { gamma: 2, alpha: 0.25 },
    mode: 'packed',
    params,
    batch: { input_ids: [ids], segment_ids: [segments], position_ids: [positions], functions },
    optimizer: { lr: 1e-4, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.01, max_grad_norm: 1.0 },
  };
}

/** Median ms per step over `reps` timed steps, after one step whose loss is returned and `warmup` more. */
async function timeSteps(runner: TrainStepRunner, reps: number, warmup: number) {
  const firstLoss = await runner.step(); // compiles pipelines; the loss at the initial weights
  const ms = await timeMedian(
    async () => {
      await runner.step();
    },
    reps,
    warmup,
  );
  return { ms, firstLoss };
}

export const bench: Bench = {
  name: 'train-step',
  description:
    'LoRA training step (fwd + focal loss + bwd + clip + AdamW), ours vs a faithful tfjs-webgpu step',
  async run({ ctx, quick }) {
    const setup = demoTrainStepSetup(quick);
    const reps = quick ? 2 : 5;
    const warmup = 1;
    const rows: BenchRow[] = [];

    const runner = await oursTrainStep(ctx, setup);
    let ours: { ms: number; firstLoss: number };
    try {
      ours = await timeSteps(runner, reps, warmup);
    } finally {
      runner.dispose();
    }

    const peer = await TfjsTrainStep.create(setup.spec);
    let tfjs: { ms: number; firstLoss: number };
    try {
      tfjs = await timeSteps(peer, reps, warmup);
    } finally {
      peer.dispose();
    }

    const ratio = tfjs.ms / ours.ms;
    rows.push({
      implementation: 'ours (WGSL)',
      workload: setup.label,
      'tokens/s': (setup.tokens / ours.ms) * 1000,
      'ms/step': ours.ms,
      'loss step 1': ours.firstLoss.toFixed(6),
      'ours/tfjs': ratio,
    });
    rows.push({
      implementation: 'tfjs-backend-webgpu',
      workload: setup.label,
      'tokens/s': (setup.tokens / tfjs.ms) * 1000,
      'ms/step': tfjs.ms,
      'loss step 1': tfjs.firstLoss.toFixed(6),
      'ours/tfjs': '',
    });
    const { config, lora } = setup.spec;
    return {
      rows,
      summary: {
        target: 'ours/tfjs >= 3 (issue 3: training step ≥ 3× tfjs)',
        'ours/tfjs': ratio,
        tokensPerStep: setup.tokens,
        reps,
        model: config,
        lora,
        objective: 'cls focal (gamma 2, alpha 0.25), packed mode, 5 functions in one pack',
        // same weights and batch on both sides: the first losses should agree to float32 rounding
        firstLoss: { ours: ours.firstLoss, tfjs: tfjs.firstLoss },
      },
    };
  },
};
