// f32 matmul, GPU-class variant: C[M,N] = alpha * op(A) · op(B) + beta * C, row-major, with the
// layouts of shaders/matmul.wgsl (TRANS_A: A stored [K,M]; TRANS_B: B stored [N,K]).
//
// Workgroup-memory tiles: a workgroup of 16×16 threads computes a 64×64 block of C. It walks K in
// steps of 16: every thread stages one vec4 (four floats) of op(A)'s 64×16 tile and one of op(B)'s
// 16×64 tile into workgroup memory, a barrier, then each thread accumulates its 4×4 register block of
// C from the staged tiles (16 steps of a 4-vector outer product), a barrier. f32 accumulation.
// Thread (tx, ty) owns rows m0 + 4·ty .. + 3 and columns n0 + 4·tx .. + 3 of the workgroup's block.
//
// Meant for discrete GPUs (where workgroup memory is on-chip and shared by the threads that reuse the
// tile); on a CPU adapter (llvmpipe / SwiftShader) the barrier-free shaders/matmul.wgsl is faster.
// The kernel set is chosen per adapter (GpuContext.kernels, src/engine/kernels/matmul.ts).
//
// Tiles in workgroup memory, as vec4 along m (tileA) and n (tileB):
//   tileA[kk·16 + q] = op(A)[m0 + 4q .. + 3, k0 + kk],   tileB[kk·16 + q] = op(B)[k0 + kk, n0 + 4q .. + 3]
// Elements past M, N or K are staged as 0, so any shape works; only in-range C is stored.
// The tiles, staging positions, the staging of op(A), accumulate, store and both entry points are in
// shaders/lib/tiled.wgsl (included at the end, shared with matmul_weight_tiled.wgsl); this file stages
// op(B) (indexA / indexB / indexC: shaders/lib/matmul_io.wgsl).
//
// Two entry points, the same algorithm:
//   main          A and B bound as vec4 rows: the contiguous dimension of each operand is a multiple of 4
//                 (A: K, or M when TRANS_A; B: K, or N when !TRANS_B), so a group of four is wholly in
//                 or out of range; binding offsets are multiples of 16 bytes (matmulVec4 in matmul.ts).
//   main_scalar   scalar loads, any shape.

// #include "lib/matmul_io"

// op(B)'s tile. Scalar staging: each of the four elements bounds-checked.
fn stageB1(t: u32, n0: u32, k0: u32) {
  if (TRANS_B) {
    let s = stageAlongK(t, k0);
    let n = n0 + s.r;
    var v: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
      if (n < params.N && s.k + i < params.K) { v[i] = B[indexB(s.k + i, n)]; }
    }
    putAlongKB(s, k0, v);
  } else {
    let s = stageAlongRow(t, k0);
    var v: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
      let n = n0 + s.r + i;
      if (n < params.N && s.k < params.K) { v[i] = B[indexB(s.k, n)]; }
    }
    tileB[(s.k - k0) * Q + s.r / 4u] = v;
  }
}

// vec4 staging: the group of four is in range as a whole (4 | the contiguous dimension).
fn stageB4(t: u32, n0: u32, k0: u32) {
  if (TRANS_B) {
    let s = stageAlongK(t, k0);
    let n = n0 + s.r;
    var v: vec4<f32>;
    if (n < params.N && s.k < params.K) { v = B4[indexB(s.k, n) / 4u]; }
    putAlongKB(s, k0, v);
  } else {
    let s = stageAlongRow(t, k0);
    let n = n0 + s.r;
    var v: vec4<f32>;
    if (n < params.N && s.k < params.K) { v = B4[indexB(s.k, n) / 4u]; }
    tileB[(s.k - k0) * Q + s.r / 4u] = v;
  }
}

// #include "lib/tiled"
