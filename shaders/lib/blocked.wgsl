// Register blocking shared by shaders/matmul.wgsl and matmul_weight.wgsl, the 'cpu' kernel set
// (`// #include "lib/blocked"`; matmul.wgsl's header describes the algorithm and why it suits a CPU
// adapter): barrier-free, no workgroup memory, each thread owns an 8×8 block of C as four 4×4 blocks
// and walks K four at a time, multiplying mat4x4 blocks of op(A) and op(B) loaded straight from
// global memory.
//
// This part holds the loads of op(A), the k-step, the store (lib/matmul_store) and the two entry points
//   main          blockA4 / blockB4 (vec4 loads)
//   main_scalar   blockA1 / blockB1 (scalar loads)
// The including shader declares, with what differs between the two:
//   TRANS_A (bool: A stored [K,M]); params.M, params.N, params.K (u32), params.alpha, params.beta (f32)
//   A: array<f32> and A4: array<vec4<f32>> (views of one binding); C: array<f32> (read_write)
//   fn indexA(m: u32, k: u32) -> u32: op(A)[m, k]'s index in A
//   fn indexC(row: u32, col: u32) -> u32: C[row, col]'s index in C (row < M, col < N)
//   fn blockB4 / blockB1(k: u32, n0: u32) -> mat4x4<f32>: op(B)'s block at (k, n0), as below (zero for
//     k ≥ K; columns past N hold anything, they are never stored)

// #include "lib/matmul_store"

// Blocks as mat4x4 (columns first): blockA[kk][i] = op(A)[m0 + i, k + kk] and
// blockB[j][kk] = op(B)[k + kk, n0 + j], so (blockA * blockB)[j][i] = Σ_kk op(A)[m0+i, ·]·op(B)[·, n0+j].
// Rows m0 + i ≥ M are clamped (their results are never stored).

fn rowA(m0: u32, i: u32) -> u32 { return min(m0 + i, params.M - 1u); }

// Scalar loads; elements with k ≥ K are zero.
fn blockA1(m0: u32, k: u32) -> mat4x4<f32> {
  var t: mat4x4<f32>;
  for (var kk = 0u; kk < 4u; kk++) {
    if (k + kk >= params.K) { break; }
    for (var i = 0u; i < 4u; i++) { t[kk][i] = A[indexA(rowA(m0, i), k + kk)]; }
  }
  return t;
}

// vec4 loads along the contiguous dimension (4 | that dimension, so a clamped block stays whole and a
// group of four never straddles rows).
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

// One k-step of the thread's 8×8 block of C, held as four 4×4 blocks c[2·ib + jb] at
// (m0 + 4·ib, n0 + 4·jb): c[2·ib + jb] += a_ib · b_jb.
fn accumulate(c: ptr<function, array<mat4x4<f32>, 4>>, a0: mat4x4<f32>, a1: mat4x4<f32>, b0: mat4x4<f32>,
              b1: mat4x4<f32>) {
  (*c)[0] += a0 * b0;
  (*c)[1] += a0 * b1;
  (*c)[2] += a1 * b0;
  (*c)[3] += a1 * b1;
}

fn storeAll(c: array<mat4x4<f32>, 4>, m0: u32, n0: u32) {
  store(c[0], m0, n0);
  store(c[1], m0, n0 + 4u);
  store(c[2], m0 + 4u, n0);
  store(c[3], m0 + 4u, n0 + 4u);
}

// The entry points differ only in the loads: one entry point must not use both views of a binding
// (A and A4, B and B4), so each has its own loop.
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 8u;
  let n0 = gid.x * 8u;
  var c: array<mat4x4<f32>, 4>;
  for (var k = 0u; k < params.K; k += 4u) {
    accumulate(&c, blockA4(m0, k), blockA4(m0 + 4u, k), blockB4(k, n0), blockB4(k, n0 + 4u));
  }
  storeAll(c, m0, n0);
}

@compute @workgroup_size(8, 8)
fn main_scalar(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 8u;
  let n0 = gid.x * 8u;
  var c: array<mat4x4<f32>, 4>;
  for (var k = 0u; k < params.K; k += 4u) {
    accumulate(&c, blockA1(m0, k), blockA1(m0 + 4u, k), blockB1(k, n0), blockB1(k, n0 + 4u));
  }
  storeAll(c, m0, n0);
}
