/** Largest workgroup count per dispatch dimension that every WebGPU adapter accepts. */
import { ShapeError } from '../errors.ts';
export const MAX_WORKGROUPS_PER_DIM = 65535;

/**
 * Workgroup counts for `count` workgroups in a 1-D grid, folded into y (then z) when `count` exceeds
 * the per-dimension limit. Shaders recover the linear workgroup index as
 * `wg.x + nwg.x * (wg.y + nwg.y * wg.z)`; the surplus workgroups of the last row see an index ≥ count
 * and must return (all shaders of the per-layer kernels bound-check their element index).
 */
export function foldWorkgroups(count: number, maxPerDim = MAX_WORKGROUPS_PER_DIM): [number, number, number] {
  if (!Number.isInteger(count) || count < 0) throw new ShapeError(`bad workgroup count ${count}`);
  if (count <= maxPerDim) return [Math.max(count, 1), 1, 1];
  const y = Math.ceil(count / maxPerDim);
  if (y <= maxPerDim) return [Math.ceil(count / y), y, 1];
  const z = Math.ceil(y / maxPerDim);
  const yy = Math.ceil(y / z);
  return [maxPerDim, yy, z];
}
