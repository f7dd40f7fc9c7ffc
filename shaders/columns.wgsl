// Column copy between a compact [T, width] buffer and a column slice of a wider [T, rowStride] one:
//   place: dst[t·rowStride + offset + j] = src[t·width + j]     (other columns of dst untouched)
//   take:  dst[t·width + j] = src[t·rowStride + offset + j]
// for t < T, j < width, offset + width ≤ rowStride. Lets separate q/k/v projections (Llama) write the
// fused per-token row [q | k | v] the attention kernel reads, and their gradients be read back out.
// src and dst are different buffers. A copy is exact. One element (of the compact side) per
// invocation; the workgroup grid may be folded into y/z (see kernels/layer-grid.ts).

// #include "lib/workgroup"

struct Params {
  T: u32,
  width: u32,
  rowStride: u32,
  offset: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

const WG: u32 = 256u;

/** The index in the wide [T, rowStride] buffer of compact element i = t·width + j. */
fn wide(i: u32) -> u32 {
  let t = i / params.width;
  let j = i - t * params.width;
  return t * params.rowStride + params.offset + j;
}

@compute @workgroup_size(WG)
fn place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.T * params.width) { return; }
  dst[wide(i)] = src[i];
}

@compute @workgroup_size(WG)
fn take(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.T * params.width) { return; }
  dst[i] = src[wide(i)];
}
