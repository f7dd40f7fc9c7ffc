// RMSNorm over the rows of X [T, C] (row-major), as Hugging Face LlamaRMSNorm (Llama, Qwen2) in f32:
//   forward:         Y = x̂·weight, x̂ = X·rstd, rstd = 1/sqrt(mean(X²) + eps); writes rstd[T]
//                    (no mean subtraction, no bias)
//   backward:        dX = rstd·(g − x̂·mean(g·x̂)), g = dY·weight
//                    (added to dX when accumulate: the residual stream's gradient)
//   backward_params: dweight[c] (+)= Σ_t dY·x̂
// Derivation of dX: ∂rstd/∂x_j = −rstd³·x_j/C, so dx_j = rstd·g_j − Σ_c g_c·x_c·rstd³·x_j/C.
// forward/backward: one invocation per row, looping over its C columns; backward_params: one
// invocation per column, looping over the T rows. No workgroup memory, no barriers, no atomics: every
// sum has a fixed order (deterministic). Sums run in blocks of BLOCK terms whose partial sums are then
// added up, so the rounding error grows like BLOCK + n/BLOCK rather than n. Σx² has only non-negative
// terms, so unlike LayerNorm's variance it needs no shift and suffers no cancellation.
// The kernel set is chosen per adapter (GpuContext.kernels, src/engine/kernels/rmsnorm.ts); the 'gpu'
// set is shaders/rmsnorm_rows.wgsl (same bindings and entry points).

// #include "lib/workgroup"

// #include "lib/rmsnorm_io"

const WG: u32 = 64u;
const BLOCK: u32 = 64u; // terms per partial sum

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = invocationIndex(wg, nwg, lid, WG);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  var q = 0.0;
  for (var c0 = 0u; c0 < C; c0 += BLOCK) {
    var b = 0.0;
    for (var c = c0; c < min(c0 + BLOCK, C); c++) {
      let x = X[base + c];
      b = fma(x, x, b);
    }
    q += b;
  }
  let rstd = 1.0 / sqrt(q / f32(C) + params.eps);
  for (var c = 0u; c < C; c++) {
    // (x·rstd)·weight in this order, as LlamaRMSNorm's weight * (x * rsqrt(…)).
    Y[base + c] = (X[base + c] * rstd) * weight[c];
  }
  rstdOut[row] = rstd;
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = invocationIndex(wg, nwg, lid, WG);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  let rstd = rstdIn[row];
  var s = 0.0; // Σ g·x̂
  for (var c0 = 0u; c0 < C; c0 += BLOCK) {
    var b = 0.0;
    for (var c = c0; c < min(c0 + BLOCK, C); c++) {
      b = fma(dY[base + c] * weight[c], X[base + c] * rstd, b);
    }
    s += b;
  }
  let m = s / f32(C);
  for (var c = 0u; c < C; c++) {
    let g = dY[base + c] * weight[c];
    let xhat = X[base + c] * rstd;
    var dx = rstd * (g - xhat * m);
    if (params.accumulate != 0u) { dx += dX[base + c]; }
    dX[base + c] = dx;
  }
}

@compute @workgroup_size(WG)
fn backward_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let col = invocationIndex(wg, nwg, lid, WG);
  let C = params.C;
  if (col >= C) { return; }
  var s = 0.0;
  for (var t0 = 0u; t0 < params.T; t0 += BLOCK) {
    var b = 0.0;
    for (var t = t0; t < min(t0 + BLOCK, params.T); t++) {
      b = fma(dYP[t * C + col], X[t * C + col] * rstdP[t], b);
    }
    s += b;
  }
  if (params.accumulate != 0u) { s += dweight[col]; }
  dweight[col] = s;
}
