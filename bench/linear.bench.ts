/**
 * Linear layers against frozen weights in every storage format: forward y = x·Wᵀ and backward
 * dx = dy·W, f32 (shared matmul) vs f16 / q8_0 / q4_0 (dequantizing kernel, shaders/matmul_weight.wgsl).
 * The headline is the time ratio to f32 (issue 3: dequantizing matmuls ≤ 1.3× the f32 time). The
 * "f32 via weight kernel" row runs f32 weights through the dequantizing kernel, which separates the
 * cost of dequantizing from the difference between the two kernels' blocking.
 * Every variant runs with both kernel sets (cpu: barrier-free shaders/matmul*.wgsl, gpu: the
 * workgroup-memory tiled shaders/*_tiled.wgsl); ratios are to f32 of the same kernel set.
 */
import { KERNEL_SETS, type KernelSet } from '../src/engine/gpu/context.ts';
import type { Dispatch, GpuContext } from '../src/engine/gpu/index.ts';
import { timeGpu } from '../src/engine/gpu/index.ts';
import {
  linearBackwardInput,
  linearForward,
  uploadWeight,
  type LinearOptions,
  type LinearWeight,
} from '../src/engine/kernels/linear.ts';
import { encodeWeight, type WeightFormat } from '../src/engine/quant.ts';
import { Rng, randomArray } from '../src/engine/random.ts';
import { median, type Bench, type BenchRow } from './harness.ts';

/** [label, T, in, out]: 1024³, then WizardCoder-1B linears at a 512-token pack. */
const SHAPES: [string, number, number, number][] = [
  ['square 1024³', 1024, 1024, 1024],
  ['1B c_attn T=512', 512, 2048, 2304],
  ['1B mlp.c_fc T=512', 512, 2048, 8192],
  ['1B mlp.c_proj T=512', 512, 8192, 2048],
];

interface Variant {
  label: string;
  format: WeightFormat;
  options: LinearOptions;
  kernels: KernelSet;
}

const FORMATS: Omit<Variant, 'kernels'>[] = [
  { label: 'f32', format: 'f32', options: {} },
  { label: 'f32 via weight kernel', format: 'f32', options: { forceWeightKernel: true } },
  { label: 'f16', format: 'f16', options: {} },
  { label: 'q8_0', format: 'q8_0', options: {} },
  { label: 'q4_0', format: 'q4_0', options: {} },
];

const VARIANTS: Variant[] = KERNEL_SETS.flatMap((kernels) =>
  FORMATS.map((f) => ({ ...f, kernels, options: { ...f.options, kernels } })),
);

const TARGET = 1.3;

async function gpuMs(ctx: GpuContext, dispatches: Dispatch[]): Promise<number> {
  return (await timeGpu(ctx, (encoder) => ctx.encode(encoder, dispatches))).ms;
}

export const bench: Bench = {
  name: 'linear',
  description:
    'x·Wᵀ and dy·W with f32 / f16 / q8_0 / q4_0 weights, both kernel sets (GPU timestamps, ratio to f32)',
  async run({ ctx, quick }) {
    const shapes = quick ? SHAPES.slice(0, 1) : SHAPES;
    const passes = quick ? (['forward'] as const) : (['forward', 'backward dx'] as const);
    const reps = quick ? 2 : 3;
    const rows: BenchRow[] = [];
    let worst = 0;
    for (const [label, T, inF, out] of shapes) {
      const rng = new Rng(1);
      const w = randomArray(rng, out * inF, 0.05);
      const x = await ctx.storageFrom('bench.x', randomArray(rng, T * inF));
      const dy = await ctx.storageFrom('bench.dy', randomArray(rng, T * out));
      const y = await ctx.storage('bench.y', T * out * 4);
      const dx = await ctx.storage('bench.dx', T * inF * 4);
      const weights = new Map<WeightFormat, LinearWeight>();
      for (const { format } of VARIANTS) {
        if (!weights.has(format)) {
          const bytes = encodeWeight(format, out, inF, w);
          weights.set(format, await uploadWeight(ctx, `bench.W.${format}`, format, out, inF, bytes));
        }
      }
      const flop = 2 * T * inF * out;
      for (const pass of passes) {
        const prepared = await Promise.all(
          VARIANTS.map(({ format, options }) => {
            const weight = weights.get(format)!;
            return pass === 'forward'
              ? linearForward(ctx, x, weight, y, T, options)
              : linearBackwardInput(ctx, dy, weight, dx, T, options);
          }),
        );
        // Interleaved (f32, f16, q8_0, … then again), so machine load hits every variant alike.
        for (const dispatches of prepared) await gpuMs(ctx, dispatches);
        const times: number[][] = VARIANTS.map(() => []);
        for (let r = 0; r < reps; r++) {
          for (let v = 0; v < VARIANTS.length; v++) times[v].push(await gpuMs(ctx, prepared[v]));
        }
        const ms = times.map(median);
        VARIANTS.forEach((variant, v) => {
          const f32 = VARIANTS.findIndex((u) => u.kernels === variant.kernels && u.label === 'f32');
          const ratio = ms[v] / ms[f32];
          if (variant.format !== 'f32' && variant.kernels === ctx.kernels) worst = Math.max(worst, ratio);
          rows.push({
            shape: label,
            pass,
            kernels: variant.kernels === ctx.kernels ? `${variant.kernels} (default)` : variant.kernels,
            weight: variant.label,
            ms: ms[v],
            'GFLOP/s': flop / ms[v] / 1e6,
            'time / f32': ratio,
          });
        });
      }
      for (const weight of weights.values()) (weight.buffer as GPUBuffer).destroy();
      for (const buffer of [x, dy, y, dx]) buffer.destroy();
    }
    return {
      rows,
      summary: {
        target: `dequantizing (f16, q8_0, q4_0) time ≤ ${TARGET}× f32 (issue 3), default kernel set`,
        defaultKernels: ctx.kernels,
        worstRatio: worst,
        met: worst <= TARGET,
        timing: 'GPU timestamps, median of interleaved repetitions',
      },
    };
  },
};
