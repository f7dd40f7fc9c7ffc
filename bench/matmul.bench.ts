import { execFileSync } from 'node:child_process';
import { matmul } from '../src/engine/kernels/matmul.ts';
import { Rng, randomArray } from '../src/engine/random.ts';
import { KERNEL_SETS } from '../src/engine/gpu/context.ts';
import { timeGpu } from '../src/engine/gpu/index.ts';
import { timeMedian, type Bench, type BenchRow } from './harness.ts';
import { tfjsWebGpu } from './peers/tfjs.ts';

// 1024³ is the headline; the others are WizardCoder-1B linears at a 512-token pack
// (c_attn 2048→2304, mlp.c_fc 2048→8192, mlp.c_proj 8192→2048).
const SHAPES: [string, number, number, number][] = [
  ['square 1024³', 1024, 1024, 1024],
  ['1B c_attn T=512', 512, 2304, 2048],
  ['1B c_fc T=512', 512, 8192, 2048],
  ['1B mlp.c_proj T=512', 512, 2048, 8192],
];

/** Native BLAS through numpy, when python3-numpy is installed: the machine's physical ceiling. */
function nativeGflops(M: number, N: number, K: number): number | undefined {
  const script = `import numpy as np, time
a=np.random.rand(${M},${K}).astype(np.float32); b=np.random.rand(${K},${N}).astype(np.float32); a@b
t=[]
for _ in range(5):
    s=time.perf_counter(); a@b; t.append(time.perf_counter()-s)
print(2*${M}*${N}*${K}/sorted(t)[2]/1e9)`;
  try {
    return Number(
      execFileSync('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'ignore'] }).toString(),
    );
  } catch {
    return undefined;
  }
}

export const bench: Bench = {
  name: 'matmul',
  description:
    'f32 matmul (x·Wᵀ), both kernel sets (cpu: barrier-free, gpu: workgroup-memory tiles) vs tfjs-backend-webgpu matMul, same adapter, same run',
  async run({ ctx, quick }) {
    const tf = await tfjsWebGpu();
    const shapes = quick ? SHAPES.slice(0, 1) : SHAPES;
    const reps = quick ? 3 : 7;
    const rows: BenchRow[] = [];
    for (const [label, M, N, K] of shapes) {
      const rng = new Rng(1);
      const a = randomArray(rng, M * K);
      const w = randomArray(rng, N * K);
      const flop = 2 * M * N * K;
      const bufA = await ctx.storageFrom('bench.A', a);
      const bufW = await ctx.storageFrom('bench.W', w);
      const bufC = await ctx.storage('bench.C', M * N * 4);
      const ours: { kernels: string; ms: number; gpuMs: number }[] = [];
      for (const kernels of KERNEL_SETS) {
        const dispatch = await matmul(ctx, bufA, bufW, bufC, { M, N, K, kernels });
        const ms = await timeMedian(() => ctx.run([dispatch]), reps);
        const gpuMs = (await timeGpu(ctx, (encoder) => ctx.encode(encoder, [dispatch]))).ms;
        ours.push({ kernels: kernels === ctx.kernels ? `${kernels} (default)` : kernels, ms, gpuMs });
      }
      for (const buffer of [bufA, bufW, bufC]) buffer.destroy();

      const ta = tf.tensor2d(a, [M, K]);
      const tw = tf.tensor2d(w, [N, K]);
      const tfMs = await timeMedian(async () => {
        const c = tf.matMul(ta, tw, false, true);
        await c.data();
        c.dispose();
      }, reps);
      ta.dispose();
      tw.dispose();

      const native = quick ? undefined : nativeGflops(M, N, K);
      for (const { kernels, ms, gpuMs } of ours) {
        const gflops = flop / ms / 1e6;
        rows.push({
          shape: label,
          kernels,
          'ours GFLOP/s': gflops,
          'ours GPU-timestamp GFLOP/s': flop / gpuMs / 1e6,
          'tfjs GFLOP/s': flop / tfMs / 1e6,
          'ours/tfjs': tfMs / ms,
          'native BLAS GFLOP/s': native ?? 'n/a',
          'of native': native ? `${((100 * gflops) / native).toFixed(1)}%` : 'n/a',
        });
      }
    }
    return {
      rows,
      summary: {
        target: 'ours/tfjs >= 3 at 1024³ (issue 3), with the adapter’s default kernel set',
        defaultKernels: ctx.kernels,
        timing: 'wall clock per submit + wait (median), and one GPU-timestamp pass',
      },
    };
  },
};
