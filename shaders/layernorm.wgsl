// LayerNorm over the rows of X [T, C] (row-major), as torch.nn.LayerNorm (biased variance):
//   forward:         Y = (X − mean)·rstd·gamma + beta, rstd = 1/sqrt(var + eps); writes mean[T], rstd[T]
//   backward:        dX = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dY·gamma, x̂ = (X − mean)·rstd
//                    (added to dX when ACCUMULATE_DX: the residual stream's gradient)
//   backward_params: dgamma[c] (+)= Σ_t dY·x̂, dbeta[c] (+)= Σ_t dY
// forward/backward: one invocation per row, looping over its C columns; backward_params: one
// invocation per column, looping over the T rows. No workgroup memory, no barriers, no atomics: every
// sum has a fixed order (deterministic). Sums run in blocks of BLOCK terms whose partial sums are then
// added up, so the rounding error grows like BLOCK + n/BLOCK rather than n.
// The forward shifts the row by its first element before summing (x − x₀ is exact for |x| within 2×
// of x₀), so a large common offset does not cost precision in the mean, and takes the variance in a
// second pass over x − mean (no E[x²] − E[x]² cancellation).

// #include "lib/workgroup"

// #include "lib/layernorm_io"

const WG: u32 = 64u;
const BLOCK: u32 = 64u; // terms per partial sum

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = invocationIndex(wg, nwg, lid, WG);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  let x0 = X[base];
  var s = 0.0;
  for (var c0 = 0u; c0 < C; c0 += BLOCK) {
    var b = 0.0;
    for (var c = c0; c < min(c0 + BLOCK, C); c++) { b += X[base + c] - x0; }
    s += b;
  }
  let meanShift = s / f32(C);
  var q = 0.0;
  for (var c0 = 0u; c0 < C; c0 += BLOCK) {
    var b = 0.0;
    for (var c = c0; c < min(c0 + BLOCK, C); c++) {
      let d = (X[base + c] - x0) - meanShift;
      b = fma(d, d, b);
    }
    q += b;
  }
  let rstd = 1.0 / sqrt(q / f32(C) + params.eps);
  for (var c = 0u; c < C; c++) {
    let xhat = ((X[base + c] - x0) - meanShift) * rstd;
    Y[base + c] = xhat * gamma[c] + beta[c];
  }
  meanOut[row] = x0 + meanShift;
  rstdOut[row] = rstd;
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = invocationIndex(wg, nwg, lid, WG);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  let mean = meanIn[row];
  let rstd = rstdIn[row];
  var s = vec2<f32>(0.0, 0.0); // (Σ g, Σ g·x̂)
  for (var c0 = 0u; c0 < C; c0 += BLOCK) {
    var b = vec2<f32>(0.0, 0.0);
    for (var c = c0; c < min(c0 + BLOCK, C); c++) {
      let g = dY[base + c] * gamma[c];
      let xhat = (X[base + c] - mean) * rstd;
      b += vec2<f32>(g, g * xhat);
    }
    s += b;
  }
  let sums = s / f32(C);
  for (var c = 0u; c < C; c++) {
    let g = dY[base + c] * gamma[c];
    let xhat = (X[base + c] - mean) * rstd;
    var dx = rstd * (g - sums.x - xhat * sums.y);
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
  var s = vec2<f32>(0.0, 0.0); // (dgamma, dbeta)
  for (var t0 = 0u; t0 < params.T; t0 += BLOCK) {
    var b = vec2<f32>(0.0, 0.0);
    for (var t = t0; t < min(t0 + BLOCK, params.T); t++) {
      let dy = dYP[t * C + col];
      let xhat = (X[t * C + col] - meanP[t]) * rstdP[t];
      b += vec2<f32>(dy * xhat, dy);
    }
    s += b;
  }
  if (params.accumulate != 0u) { s += vec2<f32>(dgamma[col], dbeta[col]); }
  dgamma[col] = s.x;
  dbeta[col] = s.y;
}
