// LayerNorm over the rows of X [T, C] (row-major), GPU-class variant: the math, bindings and entry
// points of shaders/layernorm.wgsl (torch.nn.LayerNorm, biased variance):
//   forward:         Y = (X − mean)·rstd·gamma + beta, rstd = 1/sqrt(var + eps); writes mean[T], rstd[T]
//   backward:        dX = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dY·gamma, x̂ = (X − mean)·rstd
//                    (added to dX when accumulate: the residual stream's gradient)
//   backward_params: dgamma[c] (+)= Σ_t dY·x̂, dbeta[c] (+)= Σ_t dY
//
// Design (shaders/layernorm.wgsl runs one thread per row, barrier-free, which suits CPU adapters but
// leaves a GPU with T threads and uncoalesced row walks):
//   forward/backward: one workgroup of WG threads per row. Thread i takes columns i, i + WG, i + 2·WG, …
//     (neighbouring threads read neighbouring floats: coalesced), keeps a private partial sum, and the
//     WG partial sums meet in a workgroup-memory tree reduction (log2 WG halving steps, a barrier after
//     each). The forward reduces twice: Σ(x − x₀) for the mean, then Σ(x − mean)² for the variance
//     (the same shift by the row's first element and the same two passes as layernorm.wgsl: a large
//     common offset costs no precision and there is no E[x²] − E[x]² cancellation); the backward
//     reduces (Σ g, Σ g·x̂) together as a vec2. Then every thread writes its columns.
//   backward_params: one workgroup of COLS × LANES threads per block of COLS columns. Thread (c, l)
//     sums column col0 + c over rows l, l + LANES, l + 2·LANES, … (a row's COLS columns read by
//     neighbouring threads: coalesced) in blocks of BLOCK terms; the LANES partial sums of a column meet
//     in a workgroup-memory tree reduction, and lane 0 writes dgamma/dbeta (adding the old values when
//     accumulate). No atomics: every output has one writer.
// Deterministic: each sum has a fixed order (thread partials in column/row order, then a fixed tree),
// so two runs give the same bits. Rounding error grows like C/WG + log2(WG) terms (forward, backward)
// and BLOCK + T/(LANES·BLOCK) + log2(LANES) (parameters) rather than C or T.
// Workgroups: the row (or column block) index is the folded workgroup index (lib/workgroup,
// foldWorkgroups in src/engine/kernels/layer-grid.ts), uniform across the workgroup, so the early
// return past T (or C) keeps every barrier in uniform control flow. The kernel set is chosen per
// adapter (GpuContext.kernels, src/engine/kernels/layernorm.ts).

// #include "lib/workgroup"

// #include "lib/layernorm_io"

// #include "lib/row_reduce"

var<workgroup> red2: array<vec2<f32>, WG>;

// reduce (lib/row_reduce) of a pair of sums.
fn reduce2(lid: u32, v: vec2<f32>) -> vec2<f32> {
  red2[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red2[lid] += red2[lid + s]; }
    workgroupBarrier();
  }
  let total = red2[0];
  workgroupBarrier();
  return total;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = workgroupIndex(wg, nwg);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  let x0 = X[base];
  var s = 0.0;
  for (var c = lid; c < C; c += WG) { s += X[base + c] - x0; }
  let meanShift = reduce(lid, s) / f32(C);
  var q = 0.0;
  for (var c = lid; c < C; c += WG) {
    let d = (X[base + c] - x0) - meanShift;
    q = fma(d, d, q);
  }
  let rstd = 1.0 / sqrt(reduce(lid, q) / f32(C) + params.eps);
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
  let row = workgroupIndex(wg, nwg);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  let mean = meanIn[row];
  let rstd = rstdIn[row];
  var s = vec2<f32>(0.0, 0.0); // (Σ g, Σ g·x̂)
  for (var c = lid; c < C; c += WG) {
    let g = dY[base + c] * gamma[c];
    let xhat = (X[base + c] - mean) * rstd;
    s += vec2<f32>(g, g * xhat);
  }
  let sums = reduce2(lid, s) / f32(C);
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
                   @builtin(local_invocation_id) id: vec3<u32>) {
  let col0 = workgroupIndex(wg, nwg) * COLS;
  let C = params.C;
  if (col0 >= C) { return; }
  let T = params.T;
  let col = col0 + id.x;
  let lane = id.y;
  var s = vec2<f32>(0.0, 0.0); // (dgamma, dbeta) over this lane's rows
  if (col < C) {
    for (var t0 = lane; t0 < T; t0 += LANES * BLOCK) {
      var b = vec2<f32>(0.0, 0.0);
      for (var t = t0; t < min(t0 + LANES * BLOCK, T); t += LANES) {
        let dy = dYP[t * C + col];
        let xhat = (X[t * C + col] - meanP[t]) * rstdP[t];
        b += vec2<f32>(dy * xhat, dy);
      }
      s += b;
    }
  }
  var total = reduceLanes(id, s);
  if (lane == 0u && col < C) {
    if (params.accumulate != 0u) { total += vec2<f32>(dgamma[col], dbeta[col]); }
    dgamma[col] = total.x;
    dbeta[col] = total.y;
  }
}
