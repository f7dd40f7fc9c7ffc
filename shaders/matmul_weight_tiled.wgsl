// Matmul against a frozen weight W [rows, cols] in its storage format, GPU-class variant of
// shaders/matmul_weight.wgsl (read its header for the directions, formats, parameters and the byte
// layout of W; the dequantizing helpers wordAt / halfAt / w4 / w4Edge are shared with it in
// shaders/lib/dequant.wgsl):
//   forward  (BACKWARD = false): C[m, cOffset + n] = alpha · Σ_k A[m, aOffset + k] · W[n, k] + beta · C
//   backward (BACKWARD = true):  C[m, cOffset + n] = alpha · Σ_k A[m, aOffset + k] · W[k, n] + beta · C
//
// The tiling of shaders/matmul_tiled.wgsl: a workgroup of 16×16 threads computes a 64×64 block of C,
// walking K in steps of 16; each thread stages one group of four of A's 64×16 tile and one of
// op(W)'s 16×64 tile into workgroup memory — W dequantized in the loader (w4: four consecutive
// columns of one row, never straddling a quantization block), so the tile holds f32 — then
// accumulates its 4×4 register block of C. f32 accumulation. Forward stages W[n0 + r, k .. k + 3]
// (along k, like a [N,K] B); backward W[k, n .. n + 3] (along n, like a [K,N] B).
// Elements past M, N or K are staged as 0; only in-range C is stored. The tiles, staging positions,
// the staging of A, accumulate, store and both entry points are in shaders/lib/tiled.wgsl; this file
// stages W (indexA / indexC: shaders/lib/matmul_weight_io.wgsl).
//
// Two entry points, the same algorithm:
//   main          A bound as vec4 rows: lda and aOffset multiples of 4.
//   main_scalar   A read with scalar loads, any lda / aOffset.

// #include "lib/matmul_weight_io"

// #include "lib/dequant"
// #include "lib/tiled"

// op(W)'s tile, dequantized. W columns past wCols read as 0 (w4Edge; block rows are zero-padded).
fn stageB4(t: u32, n0: u32, k0: u32) {
  if (BACKWARD) {
    // W rows k (< K = wRows of this chunk) at columns n .. n + 3.
    let s = stageAlongRow(t, k0);
    let n = n0 + s.r;
    var v: vec4<f32>;
    if (s.k < params.K && n < params.N) {
      if (n + 4u <= params.N) { v = w4(s.k, n); } else { v = w4Edge(s.k, n); }
    }
    tileB[(s.k - k0) * Q + s.r / 4u] = v;
  } else {
    // W row n (< N = wRows of this chunk) at columns k .. k + 3 (K = wCols).
    let s = stageAlongK(t, k0);
    let n = n0 + s.r;
    var v: vec4<f32>;
    if (n < params.N && s.k < params.K) {
      if (s.k + 4u <= params.K) { v = w4(n, s.k); } else { v = w4Edge(n, s.k); }
    }
    putAlongKB(s, k0, v);
  }
}

// W's staging does not depend on how A is read: both entry points (lib/tiled) use it.
fn stageB1(t: u32, n0: u32, k0: u32) { stageB4(t, n0, k0); }
