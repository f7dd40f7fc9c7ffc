import { describe, expect, it } from 'vitest';
import { takeGlobalFlags } from '../../src/cli/flags.ts';
import { KERNEL_SETS, defaultKernels, setKernelOverride } from '../../src/engine/gpu/context.ts';
import { createNodeContext } from '../../src/engine/gpu/node.ts';
import { matmul, matmulVec4 } from '../../src/engine/kernels/matmul.ts';
import { matmulRef } from '../../src/engine/reference/matmul.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();

// f32 accumulation over K terms of size ~1: relative error grows like sqrt(K)·2^-24; 1e-5 of the
// output scale leaves room for K up to a few thousand while catching any indexing mistake.
const TOLERANCE = 1e-5;

const shapes: [number, number, number][] = [
  [1, 1, 1],
  [17, 33, 65],
  [64, 64, 64],
  [65, 63, 17],
  [3, 130, 7],
  [129, 5, 200],
  // The vec4 entry point (contiguous dimensions multiples of 4) at edges: M, N past a 32-tile and not
  // multiples of it, K not a multiple of 4 where only M and N are contiguous (Aᵀ·B), 4-wide minimums.
  [36, 68, 44],
  [12, 20, 37],
  [4, 4, 4],
  [100, 8, 132],
  // Past two 64-tiles in M and N with ragged ends, K not a multiple of the tiled kernel's 16-step.
  [130, 131, 50],
];

// Both kernel sets ('cpu' barrier-free, 'gpu' workgroup-memory tiles) against the same reference.
for (const kernels of KERNEL_SETS)
  describe(`matmul (f32, ${kernels} kernels) on the real adapter`, () => {
    it('reports a real adapter', () => {
      const ctx = gpu();
      expect(ctx.adapter.vendor.length + ctx.adapter.architecture.length).toBeGreaterThan(0);
      expect(ctx.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    });

    for (const [M, N, K] of shapes) {
      for (const [transA, transB] of [
        [false, true],
        [false, false],
        [true, false],
        [true, true],
      ]) {
        it(`${M}x${N}x${K} transA=${transA} transB=${transB}`, async () => {
          const ctx = gpu();
          const rng = new Rng(M * 1000 + N * 10 + K);
          const a = randomArray(rng, M * K);
          const b = randomArray(rng, K * N);
          const c0 = randomArray(rng, M * N);
          const [bufA, bufB, bufC] = await Promise.all([
            ctx.storageFrom('A', a),
            ctx.storageFrom('B', b),
            ctx.storageFrom('C', c0),
          ]);
          const opts = { transA, transB, alpha: 0.5, beta: 1 };
          await ctx.run([await matmul(ctx, bufA, bufB, bufC, { M, N, K, kernels, ...opts })]);
          const got = await ctx.readF32(bufC);
          const { maxRel } = compare(got, matmulRef(a, b, c0, M, N, K, opts));
          expect(maxRel).toBeLessThan(TOLERANCE);
          for (const buffer of [bufA, bufB, bufC]) buffer.destroy();
        });
      }
    }

    it('picks the vec4 entry point exactly when the contiguous dimensions are multiples of 4', () => {
      expect(matmulVec4({ M: 3, N: 5, K: 8 })).toBe(true); // A [M,K], B [N,K]: K
      expect(matmulVec4({ M: 3, N: 5, K: 8, transB: false })).toBe(false); // B [K,N]: N
      expect(matmulVec4({ M: 4, N: 8, K: 7, transA: true, transB: false })).toBe(true);
      expect(matmulVec4({ M: 4, N: 8, K: 7, transA: true, transB: true })).toBe(false);
    });

    for (const transB of [true, false]) {
      it(`operands bound at offsets (vec4 and scalar entry points) transB=${transB}`, async () => {
        const ctx = gpu();
        const align = ctx.device.limits.minStorageBufferOffsetAlignment;
        for (const [M, N, K] of [
          [9, 12, 16],
          [9, 13, 15],
        ]) {
          const rng = new Rng(M + N + K);
          const a = randomArray(rng, M * K);
          const b = randomArray(rng, K * N);
          // Each operand after `align` bytes of NaN in a bigger buffer.
          const padded = async (label: string, data: Float32Array) => {
            const buffer = await ctx.storage(label, align + data.length * 4 + 64);
            ctx.write(buffer, new Float32Array(buffer.size / 4).fill(NaN));
            ctx.write(buffer, data, align);
            return { buffer, offset: align, size: data.length * 4 };
          };
          const [bindA, bindB, bindC] = await Promise.all([
            padded('A', a),
            padded('B', b),
            padded('C', new Float32Array(M * N).fill(NaN)),
          ]);
          await ctx.run([await matmul(ctx, bindA, bindB, bindC, { M, N, K, transB, kernels })]);
          const got = await ctx.readF32(bindC.buffer, M * N, align / 4);
          const { maxRel } = compare(got, matmulRef(a, b, undefined, M, N, K, { transB }));
          expect(maxRel).toBeLessThan(TOLERANCE);
          for (const bind of [bindA, bindB, bindC]) bind.buffer.destroy();
        }
      });
    }

    it('beta = 0 ignores NaN already in C', async () => {
      const ctx = gpu();
      const [M, N, K] = [5, 6, 7];
      const rng = new Rng(7);
      const a = randomArray(rng, M * K);
      const b = randomArray(rng, N * K);
      const c = await ctx.storageFrom('C', new Float32Array(M * N).fill(NaN));
      await ctx.run([
        await matmul(ctx, await ctx.storageFrom('A', a), await ctx.storageFrom('B', b), c, {
          M,
          N,
          K,
          kernels,
        }),
      ]);
      const got = await ctx.readF32(c);
      expect(compare(got, matmulRef(a, b, undefined, M, N, K)).maxRel).toBeLessThan(TOLERANCE);
    });
  });

describe('kernel set per adapter', () => {
  const base = { vendor: '', architecture: '', device: '', description: '', isFallbackAdapter: false };
  it("is 'cpu' on CPU-backed adapters and 'gpu' otherwise", () => {
    expect(defaultKernels({ ...base, isFallbackAdapter: true })).toBe('cpu');
    expect(defaultKernels({ ...base, vendor: 'mesa', device: 'llvmpipe-llvm-15' })).toBe('cpu');
    expect(defaultKernels({ ...base, description: 'Vulkan lavapipe' })).toBe('cpu');
    expect(defaultKernels({ ...base, vendor: 'google', description: 'SwiftShader Device (Subzero)' })).toBe(
      'cpu',
    );
    expect(defaultKernels({ ...base, vendor: 'nvidia', architecture: 'hopper' })).toBe('gpu');
  });

  it('--kernels cpu|gpu overrides it for contexts created afterwards', async () => {
    try {
      expect(takeGlobalFlags(['--json', '--kernels', 'gpu', 'x'], 'help')).toEqual(['--json', 'x']);
      const forced = await createNodeContext();
      expect(forced.kernels).toBe('gpu');
      forced.destroy();
      expect(takeGlobalFlags(['--kernels=cpu'], 'help')).toEqual([]);
      expect(() => takeGlobalFlags(['--kernels', 'tpu'], 'help')).toThrow(/cpu or gpu/);
      expect(takeGlobalFlags(['--', '--kernels', 'x'], 'help')).toEqual(['--', '--kernels', 'x']);
    } finally {
      setKernelOverride(undefined);
    }
  });

  it('the context picks it from its adapter and matmul follows the context', async () => {
    const ctx = gpu();
    expect(ctx.kernels).toBe(defaultKernels(ctx.adapter));
    const c = await ctx.storage('C', 16);
    const saved = ctx.kernels;
    try {
      for (const kernels of KERNEL_SETS) {
        ctx.kernels = kernels;
        const dispatch = await matmul(ctx, c, c, c, { M: 2, N: 2, K: 2 });
        expect(dispatch.label.endsWith(' tiled')).toBe(kernels === 'gpu');
      }
    } finally {
      ctx.kernels = saved;
      c.destroy();
    }
  });
});
