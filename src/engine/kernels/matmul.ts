import type { KernelSet } from '../gpu/context.ts';
import { ceilDiv, type Binding, type Dispatch, type GpuContext } from '../gpu/index.ts';

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  /** A stored [K,M] instead of [M,K]. */
  transA?: boolean;
  /** B stored [N,K] instead of [K,N] (weights [out,in] in x·Wᵀ). */
  transB?: boolean;
  alpha?: number;
  /** C = alpha·op(A)·op(B) + beta·C; beta = 1 accumulates (gradient accumulation). */
  beta?: number;
  /** The kernel variant; default `ctx.kernels` (chosen per adapter). */
  kernels?: KernelSet;
}

/**
 * The shader of each kernel set and its outputs per workgroup side: 'cpu' 8×8 threads of 8×8 outputs
 * each, barrier-free (shaders/matmul.wgsl); 'gpu' 16×16 threads of 4×4 outputs staged through
 * workgroup memory (shaders/matmul_tiled.wgsl). Both: 64×64 outputs per workgroup.
 */
const VARIANTS: Record<KernelSet, { shader: string; tile: number }> = {
  cpu: { shader: 'matmul', tile: 64 },
  gpu: { shader: 'matmul_tiled', tile: 64 },
};

/**
 * The vec4 entry point needs the contiguous dimension of each operand to be a multiple of 4; binding
 * offsets are multiples of minStorageBufferOffsetAlignment (a power of two ≥ 32), so rows stay 16-byte
 * aligned. Anything else runs the scalar entry point (same algorithm).
 */
export function matmulVec4(shape: Pick<MatmulShape, 'M' | 'N' | 'K' | 'transA' | 'transB'>): boolean {
  const { M, N, K, transA = false, transB = true } = shape;
  return (transA ? M : K) % 4 === 0 && (transB ? K : N) % 4 === 0;
}

/** Prepares C = alpha·op(A)·op(B) + beta·C (see shaders/matmul.wgsl for layouts). */
export async function matmul(
  ctx: GpuContext,
  a: GPUBuffer | Binding,
  b: GPUBuffer | Binding,
  c: GPUBuffer | Binding,
  shape: MatmulShape,
): Promise<Dispatch> {
  const { M, N, K, transA = false, transB = true, alpha = 1, beta = 0 } = shape;
  const kernels = shape.kernels ?? ctx.kernels;
  const { shader, tile } = VARIANTS[kernels];
  const vec4 = matmulVec4(shape);
  const pipeline = await ctx.pipeline(shader, {
    entryPoint: vec4 ? 'main' : 'main_scalar',
    constants: { TRANS_A: Number(transA), TRANS_B: Number(transB) },
  });
  const params = new ArrayBuffer(20);
  new Uint32Array(params, 0, 3).set([M, N, K]);
  new Float32Array(params, 12, 2).set([alpha, beta]);
  const uniform = ctx.uniform('matmul.params', new Uint8Array(params));
  return {
    label: `matmul ${M}x${N}x${K}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}${vec4 ? '' : ' scalar'}${kernels === 'gpu' ? ' tiled' : ''}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [a, b, c, uniform]),
    workgroups: [ceilDiv(N, tile), ceilDiv(M, tile), 1],
  };
}
