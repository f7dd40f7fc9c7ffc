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
//
// The loads of op(A), the store and both entry points are in shaders/lib/blocked.wgsl (shared with
// matmul_weight.wgsl); this file loads op(B) (indexA / indexB / indexC: shaders/lib/matmul_io.wgsl).

// #include "lib/matmul_io"
// #include "lib/blocked"

// op(B)'s blocks, as lib/blocked takes them: blockB[j][kk] = op(B)[k + kk, n0 + j]. Columns n0 + j ≥ N
// are clamped (their results are never stored).

fn colB(n0: u32, j: u32) -> u32 { return min(n0 + j, params.N - 1u); }

// Scalar loads; elements with k ≥ K are zero.
fn blockB1(k: u32, n0: u32) -> mat4x4<f32> {
  var t: mat4x4<f32>;
  for (var kk = 0u; kk < 4u; kk++) {
    if (k + kk >= params.K) { break; }
    for (var j = 0u; j < 4u; j++) { t[j][kk] = B[indexB(k + kk, colB(n0, j))]; }
  }
  return t;
}

// vec4 loads along the contiguous dimension (4 | that dimension, so a clamped block stays whole).
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
