// Elementwise kernels over flat f32 buffers (residual adds, scaled adds, fills).
//   main     (in place):     A[i] = scaleA·A[i] + scaleB·B[i]    (residual: scaleA = scaleB = 1)
//   add_out  (out of place): C[i] = scaleA·A[i] + scaleB·B[i]
//   fill:                    A[i] = value                        (zeroing gradients)
// scaleA == 0 never reads A (it may hold garbage/NaN from a pooled buffer); likewise scaleB == 0 and B.
// One element per invocation; the workgroup grid may be folded into y/z (see kernels/layer-grid.ts).

// #include "lib/workgroup"

struct Params {
  n: u32,
  scaleA: f32,
  scaleB: f32,
  value: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

const WG: u32 = 256u;

/** scaleA·A[i] + scaleB·B[i], reading an operand only when its scale is non-zero. */
fn scaledSum(i: u32) -> f32 {
  var r = 0.0;
  if (params.scaleA != 0.0) { r = params.scaleA * A[i]; }
  if (params.scaleB != 0.0) { r += params.scaleB * B[i]; }
  return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  A[i] = scaledSum(i);
}

@compute @workgroup_size(WG)
fn add_out(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  C[i] = scaledSum(i);
}

@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  A[i] = params.value;
}
