// f32 matmul: C[M,N] = alpha * op(A) · op(B) + beta * C, row-major.
//   TRANS_A = false: A is [M,K];  true: A is stored [K,M]  (dyᵀ·x in backward)
//   TRANS_B = false: B is [K,N];  true: B is stored [N,K]  (x·Wᵀ with W [out,in] in forward)
//
// Register-blocked and barrier-free: each thread owns an 8×8 block of C (four 4×4 blocks) and walks
// K four at a time, loading two 4×4 blocks of op(A) and two of op(B) straight from global memory as
// mat4x4 and accumulating their four products (256 FMAs per 16 vec4 loads; 8×8 measured 10-25% faster
// than 4×4 per thread). There is no workgroup memory and no barrier: on a CPU
// adapter (llvmpipe: a workgroup is one CPU thread, invocations are SIMD lanes, workgroup memory is
// ordinary memory) the caches do the reuse that staged tiles would, and the staging copies and
// barriers cost more than they save — this measured 2.5-3× faster there than a 64×64 tiled kernel
// staged through workgroup memory (bench/matmul.bench.ts). Neighbouring threads own neighbouring blocks.
// This is the 'cpu' kernel set; discrete GPUs get the workgroup-memory tiled shaders/matmul_tiled.wgsl
// (the 'gpu' set, GpuContext.kernels). This one is correct there too (64 threads per workgroup, a
// 64×64 block of C each, no workgroup memory) but was only measured on llvmpipe.
//
// Two entry points, the same algorithm:
//   main           A and B bound as vec4 rows. Needs the contiguous dimension of each operand to be a
//                  multiple of 4 (A: K, or M when TRANS_A; B: K, or N when !TRANS_B); binding offsets
//                  are multiples of minStorageBufferOffsetAlignment (≥ 32), hence of 16 bytes.
//   main_scalar    the same with scalar loads, for any shape.
// Edges: rows and columns past M / N are clamped to the last one (computed, never stored); the last,
// partial k-step zeroes k ≥ K. So any M, N, K works.

// #include "lib/matmul_io"

// Index of op(A)[m, k] and op(B)[k, n] in their buffers.
fn indexA(m: u32, k: u32) -> u32 {
  if (TRANS_A) { return k * params.M + m; }
  return m * params.K + k;
}

fn indexB(k: u32, n: u32) -> u32 {
  if (TRANS_B) { return n * params.K + k; }
  return k * params.N + n;
}

// Blocks as mat4x4 (columns first): blockA[kk][i] = op(A)[m0 + i, k + kk] and
// blockB[j][kk] = op(B)[k + kk, n0 + j], so (blockA * blockB)[j][i] = Σ_kk op(A)[m0+i, ·]·op(B)[·, n0+j].
// Rows m0 + i ≥ M and columns n0 + j ≥ N are clamped (their results are never stored).

fn rowA(m0: u32, i: u32) -> u32 { return min(m0 + i, params.M - 1u); }
fn colB(n0: u32, j: u32) -> u32 { return min(n0 + j, params.N - 1u); }

// Scalar loads; elements with k ≥ K are zero. Also the partial last k-step of `main`.
fn blockA1(m0: u32, k: u32) -> mat4x4<f32> {
  var t: mat4x4<f32>;
  for (var kk = 0u; kk < 4u; kk++) {
    if (k + kk >= params.K) { break; }
    for (var i = 0u; i < 4u; i++) { t[kk][i] = A[indexA(rowA(m0, i), k + kk)]; }
  }
  return t;
}

fn blockB1(k: u32, n0: u32) -> mat4x4<f32> {
  var t: mat4x4<f32>;
  for (var kk = 0u; kk < 4u; kk++) {
    if (k + kk >= params.K) { break; }
    for (var j = 0u; j < 4u; j++) { t[j][kk] = B[indexB(k + kk, colB(n0, j))]; }
  }
  return t;
}

// vec4 loads along the contiguous dimension (4 | that dimension, so a clamped block stays whole).
fn blockA4(m0: u32, k: u32) -> mat4x4<f32> {
  if (k + 4u > params.K) {
    var t: mat4x4<f32>;
    for (var kk = 0u; k + kk < params.K; kk++) {
      for (var i = 0u; i < 4u; i++) {
        let e = indexA(rowA(m0, i), k + kk);
        t[kk][i] = A4[e / 4u][e % 4u];
      }
    }
    return t;
  }
  if (TRANS_A) {
    let m = min(m0, params.M - 4u);
    return mat4x4<f32>(A4[indexA(m, k) / 4u], A4[indexA(m, k + 1u) / 4u], A4[indexA(m, k + 2u) / 4u],
                       A4[indexA(m, k + 3u) / 4u]);
  }
  return transpose(mat4x4<f32>(A4[indexA(rowA(m0, 0u), k) / 4u], A4[indexA(rowA(m0, 1u), k) / 4u],
                               A4[indexA(rowA(m0, 2u), k) / 4u], A4[indexA(rowA(m0, 3u), k) / 4u]));
}

fn blockB4(k: u32, n0: u32) -> mat4x4<f32> {
  if (k + 4u > params.K) {
    var t: mat4x4<f32>;
    for (var kk = 0u; k + kk < params.K; kk++) {
      for (var j = 0u; j < 4u; j++) {
        let e = indexB(k + kk, colB(n0, j));
        t[j][kk] = B4[e / 4u][e % 4u];
      }
    }
    return t;
  }
  if (TRANS_B) {
    return mat4x4<f32>(B4[indexB(k, colB(n0, 0u)) / 4u], B4[indexB(k, colB(n0, 1u)) / 4u],
                       B4[indexB(k, colB(n0, 2u)) / 4u], B4[indexB(k, colB(n0, 3u)) / 4u]);
  }
  let n = min(n0, params.N - 4u);
  return transpose(mat4x4<f32>(B4[indexB(k, n) / 4u], B4[indexB(k + 1u, n) / 4u], B4[indexB(k + 2u, n) / 4u],
                               B4[indexB(k + 3u, n) / 4u]));
}

fn store(acc: mat4x4<f32>, m0: u32, n0: u32) {
  for (var i = 0u; i < 4u; i++) {
    let row = m0 + i;
    if (row >= params.M) { return; }
    for (var j = 0u; j < 4u; j++) {
      let col = n0 + j;
      if (col >= params.N) { break; }
      let idx = row * params.N + col;
      var value = params.alpha * acc[j][i];
      // beta == 0 must not read C: it may hold garbage (NaN) from a pooled buffer.
      if (params.beta != 0.0) { value += params.beta * C[idx]; }
      C[idx] = value;
    }
  }
}

// Each thread: the 8×8 block of C at (m0, n0) as four 4×4 blocks c[2·ib + jb] at (m0 + 4·ib, n0 + 4·jb).
fn storeAll(c: array<mat4x4<f32>, 4>, m0: u32, n0: u32) {
  store(c[0], m0, n0);
  store(c[1], m0, n0 + 4u);
  store(c[2], m0 + 4u, n0);
  store(c[3], m0 + 4u, n0 + 4u);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 8u;
  let n0 = gid.x * 8u;
  var c: array<mat4x4<f32>, 4>;
  for (var k = 0u; k < params.K; k += 4u) {
    let a0 = blockA4(m0, k);
    let a1 = blockA4(m0 + 4u, k);
    let b0 = blockB4(k, n0);
    let b1 = blockB4(k, n0 + 4u);
    c[0] += a0 * b0;
    c[1] += a0 * b1;
    c[2] += a1 * b0;
    c[3] += a1 * b1;
  }
  storeAll(c, m0, n0);
}

@compute @workgroup_size(8, 8)
fn main_scalar(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 8u;
  let n0 = gid.x * 8u;
  var c: array<mat4x4<f32>, 4>;
  for (var k = 0u; k < params.K; k += 4u) {
    let a0 = blockA1(m0, k);
    let a1 = blockA1(m0 + 4u, k);
    let b0 = blockB1(k, n0);
    let b1 = blockB1(k, n0 + 4u);
    c[0] += a0 * b0;
    c[1] += a0 * b1;
    c[2] += a1 * b0;
    c[3] += a1 * b1;
  }
  storeAll(c, m0, n0);
}
