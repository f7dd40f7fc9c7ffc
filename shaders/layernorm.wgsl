// LayerNorm over the rows of X [T, C] (row-major), as torch.nn.LayerNorm (biased variance):
//   forward:         Y = (X − mean)·rstd·gamma + beta, rstd = 1/sqrt(var + eps); writes mean[T], rstd[T]
//   backward:        dX = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dY·gamma, x̂ = (X − mean)·rstd
//                    (added to dX when ACCUMULATE_DX: the residual stream's gradient)
//   backward_params: dgamma[c] (+)= Σ_t dY·x̂, dbeta[c] (+)= Σ_t dY
// forward/backward: one workgroup of 256 per row, threads stride over the columns, fixed-order tree
// reductions in workgroup memory. The forward shifts the row by its first element before summing
// (x − x₀ is exact for |x| within 2× of x₀), so a large common offset does not cost precision in the
// mean, and takes the variance in a second pass over x − mean (no E[x²] − E[x]² cancellation).
// backward_params: 32 columns × 8 row lanes per workgroup, each lane sums its rows in order and the
// lanes are combined in a fixed tree — deterministic, no float atomics.

struct Params {
  T: u32,
  C: u32,
  eps: f32,
  accumulate: u32, // backward: add to dX; backward_params: add to dgamma/dbeta
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
// forward
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> meanOut: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstdOut: array<f32>;
// backward (gamma at 2 as in forward)
@group(0) @binding(3) var<storage, read> meanIn: array<f32>;
@group(0) @binding(4) var<storage, read> rstdIn: array<f32>;
@group(0) @binding(5) var<storage, read> dY: array<f32>;
@group(0) @binding(6) var<storage, read_write> dX: array<f32>;
// backward_params (X at 1, dY at 5 as in backward)
@group(0) @binding(2) var<storage, read> meanP: array<f32>;
@group(0) @binding(3) var<storage, read> rstdP: array<f32>;
@group(0) @binding(4) var<storage, read> dYP: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;

const WG: u32 = 256u;
const COLS: u32 = 32u;
const LANES: u32 = 8u;

var<workgroup> red: array<vec2<f32>, WG>;
var<workgroup> partial: array<array<vec2<f32>, COLS>, LANES>;

// Sum of v over the workgroup, same value returned to every thread.
fn workgroup_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { red[lid] += red[lid + stride]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier(); // red is reused by the next reduction
  return total;
}

fn row_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + nwg.x * (wg.y + nwg.y * wg.z);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, nwg);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  let x0 = X[base];
  var s = 0.0;
  for (var c = lid; c < C; c += WG) { s += X[base + c] - x0; }
  let meanShift = workgroup_sum(lid, vec2<f32>(s, 0.0)).x / f32(C);
  var q = 0.0;
  for (var c = lid; c < C; c += WG) {
    let d = (X[base + c] - x0) - meanShift;
    q += d * d;
  }
  let variance = workgroup_sum(lid, vec2<f32>(q, 0.0)).x / f32(C);
  let rstd = 1.0 / sqrt(variance + params.eps);
  for (var c = lid; c < C; c += WG) {
    let xhat = ((X[base + c] - x0) - meanShift) * rstd;
    Y[base + c] = xhat * gamma[c] + beta[c];
  }
  if (lid == 0u) {
    meanOut[row] = x0 + meanShift;
    rstdOut[row] = rstd;
  }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = row_index(wg, nwg);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  let mean = meanIn[row];
  let rstd = rstdIn[row];
  var s = vec2<f32>(0.0, 0.0);
  for (var c = lid; c < C; c += WG) {
    let g = dY[base + c] * gamma[c];
    let xhat = (X[base + c] - mean) * rstd;
    s += vec2<f32>(g, g * xhat);
  }
  let sums = workgroup_sum(lid, s) / f32(C);
  for (var c = lid; c < C; c += WG) {
    let g = dY[base + c] * gamma[c];
    let xhat = (X[base + c] - mean) * rstd;
    var dx = rstd * (g - sums.x - xhat * sums.y);
    if (params.accumulate != 0u) { dx += dX[base + c]; }
    dX[base + c] = dx;
  }
}

@compute @workgroup_size(COLS, LANES)
fn backward_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = row_index(wg, nwg) * COLS + lid.x;
  let C = params.C;
  var s = vec2<f32>(0.0, 0.0); // (dgamma, dbeta)
  if (col < C) {
    for (var t = lid.y; t < params.T; t += LANES) {
      let dy = dYP[t * C + col];
      let xhat = (X[t * C + col] - meanP[t]) * rstdP[t];
      s += vec2<f32>(dy * xhat, dy);
    }
  }
  partial[lid.y][lid.x] = s;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
    if (lid.y < stride) { partial[lid.y][lid.x] += partial[lid.y + stride][lid.x]; }
    workgroupBarrier();
  }
  if (lid.y == 0u && col < C) {
    var total = partial[0][lid.x];
    if (params.accumulate != 0u) { total += vec2<f32>(dgamma[col], dbeta[col]); }
    dgamma[col] = total.x;
    dbeta[col] = total.y;
  }
}
