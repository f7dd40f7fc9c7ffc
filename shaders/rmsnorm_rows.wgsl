// RMSNorm over the rows of X [T, C] (row-major), GPU-class variant: the math, bindings and entry points
// of shaders/rmsnorm.wgsl (Hugging Face LlamaRMSNorm in f32):
//   forward:         Y = x̂·weight, x̂ = X·rstd, rstd = 1/sqrt(mean(X²) + eps); writes rstd[T]
//   backward:        dX = rstd·(g − x̂·mean(g·x̂)), g = dY·weight
//                    (added to dX when accumulate: the residual stream's gradient)
//   backward_params: dweight[c] (+)= Σ_t dY·x̂
//
// Design (as shaders/layernorm_rows.wgsl; rmsnorm.wgsl runs one thread per row, barrier-free, which
// suits CPU adapters but leaves a GPU with T threads and uncoalesced row walks):
//   forward/backward: one workgroup of WG threads per row. Thread i takes columns i, i + WG, … (coalesced
//     reads), keeps a private partial sum, and the WG partial sums meet in a workgroup-memory tree
//     reduction (log2 WG halving steps, a barrier after each): Σx² (forward), Σ g·x̂ (backward). Then
//     every thread writes its columns.
//   backward_params: one workgroup of COLS × LANES threads per block of COLS columns. Thread (c, l) sums
//     column col0 + c over rows l, l + LANES, … in blocks of BLOCK terms; the LANES partial sums of a
//     column meet in a workgroup-memory tree reduction and lane 0 writes dweight (adding the old value
//     when accumulate). No atomics: every output has one writer.
// Deterministic: each sum has a fixed order (thread partials in column/row order, then a fixed tree),
// so two runs give the same bits. Workgroups: the row (or column block) index is the folded workgroup
// index (lib/workgroup, foldWorkgroups), uniform across the workgroup, so the early return past T (or
// C) keeps every barrier in uniform control flow.

// #include "lib/workgroup"

// #include "lib/rmsnorm_io"

// #include "lib/row_reduce"

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let row = workgroupIndex(wg, nwg);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  var q = 0.0;
  for (var c = lid; c < C; c += WG) {
    let x = X[base + c];
    q = fma(x, x, q);
  }
  let rstd = 1.0 / sqrt(reduce(lid, q) / f32(C) + params.eps);
  for (var c = lid; c < C; c += WG) {
    // (x·rstd)·weight in this order, as LlamaRMSNorm's weight * (x * rsqrt(…)).
    Y[base + c] = (X[base + c] * rstd) * weight[c];
  }
  if (lid == 0u) { rstdOut[row] = rstd; }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let row = workgroupIndex(wg, nwg);
  if (row >= params.T) { return; }
  let C = params.C;
  let base = row * C;
  let rstd = rstdIn[row];
  var s = 0.0; // Σ g·x̂ over this thread's columns
  for (var c = lid; c < C; c += WG) {
    s = fma(dY[base + c] * weight[c], X[base + c] * rstd, s);
  }
  let m = reduce(lid, s) / f32(C);
  for (var c = lid; c < C; c += WG) {
    let g = dY[base + c] * weight[c];
    let xhat = X[base + c] * rstd;
    var dx = rstd * (g - xhat * m);
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
  var s = 0.0; // dweight over this lane's rows
  if (col < C) {
    for (var t0 = lane; t0 < T; t0 += LANES * BLOCK) {
      var b = 0.0;
      for (var t = t0; t < min(t0 + LANES * BLOCK, T); t += LANES) {
        b = fma(dYP[t * C + col], X[t * C + col] * rstdP[t], b);
      }
      s += b;
    }
  }
  var total = reduceLanes(id, vec2<f32>(s, 0.0)).x;
  if (lane == 0u && col < C) {
    if (params.accumulate != 0u) { total += dweight[col]; }
    dweight[col] = total;
  }
}
