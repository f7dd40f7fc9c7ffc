import { ShapeError, UnsupportedError } from '../errors.ts';
import type { Binding, Dispatch, GpuContext } from '../gpu/index.ts';
import { foldWorkgroups } from './layer-grid.ts';

/** "gelu": exact erf form; "gelu_pytorch_tanh": tanh approximation (torch approximate='tanh'). */
export type GeluKind = 'gelu' | 'gelu_pytorch_tanh';

/**
 * Maps a Hugging Face `activation_function` to the kernel's form. "gelu_new" and "gelu_fast" are the
 * same tanh approximation as "gelu_pytorch_tanh" up to rounding.
 */
export function geluKind(activationFunction: string): GeluKind {
  switch (activationFunction) {
    case 'gelu':
      return 'gelu';
    case 'gelu_pytorch_tanh':
    case 'gelu_new':
    case 'gelu_fast':
      return 'gelu_pytorch_tanh';
    default:
      throw new UnsupportedError(
        `unsupported activation_function "${activationFunction}"`,
        'Pick a model whose activation_function is gelu or gelu_pytorch_tanh.',
      );
  }
}

async function prepare(
  ctx: GpuContext,
  entryPoint: string,
  kind: GeluKind,
  n: number,
  buffers: (GPUBuffer | Binding)[],
): Promise<Dispatch> {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) throw new ShapeError(`gelu: bad element count ${n}`);
  const pipeline = await ctx.pipeline('gelu', {
    entryPoint,
    constants: { APPROX: kind === 'gelu' ? 0 : 1 },
  });
  const params = ctx.uniform('gelu.params', new Uint32Array([n, 0, 0, 0]));
  return {
    label: `${kind} ${entryPoint} ${n}`,
    pipeline,
    bindGroup: ctx.bindGroup(pipeline, [params, ...buffers]),
    workgroups: foldWorkgroups(Math.ceil(n / 256)),
  };
}

/** Y = gelu(X) over `n` elements (Y a different buffer: the backward needs X). */
export function geluForward(
  ctx: GpuContext,
  x: GPUBuffer | Binding,
  y: GPUBuffer | Binding,
  n: number,
  kind: GeluKind = 'gelu_pytorch_tanh',
): Promise<Dispatch> {
  return prepare(ctx, 'forward', kind, n, [x, y]);
}

/** dX = dY·gelu'(X) over `n` elements. */
export function geluBackward(
  ctx: GpuContext,
  x: GPUBuffer | Binding,
  dy: GPUBuffer | Binding,
  dx: GPUBuffer | Binding,
  n: number,
  kind: GeluKind = 'gelu_pytorch_tanh',
): Promise<Dispatch> {
  return prepare(ctx, 'backward', kind, n, [x, dy, dx]);
}

/** In place: G = G·gelu'(X), G holding dY on entry and dX after (saves a [T, 4C] buffer). */
export function geluBackwardInPlace(
  ctx: GpuContext,
  x: GPUBuffer | Binding,
  g: GPUBuffer | Binding,
  n: number,
  kind: GeluKind = 'gelu_pytorch_tanh',
): Promise<Dispatch> {
  return prepare(ctx, 'backward_inplace', kind, n, [x, g]);
}

/** Y = erf(X) with the shader's float32 erf (exposed for tests and diagnostics). */
export function erfForward(
  ctx: GpuContext,
  x: GPUBuffer | Binding,
  y: GPUBuffer | Binding,
  n: number,
): Promise<Dispatch> {
  return prepare(ctx, 'erf_forward', 'gelu', n, [x, y]);
}
