// Workgroup-memory tiling shared by shaders/matmul_tiled.wgsl and matmul_weight_tiled.wgsl
// (`// #include "lib/tiled"`; matmul_tiled.wgsl's header describes the algorithm): a workgroup of
// 16×16 threads computes a 64×64 block of C, walking K in steps of 16; every thread stages one vec4
// of op(A)'s 64×16 tile and one of op(B)'s 16×64 tile, a barrier, accumulates its 4×4 register block
// of C (rows m0 + 4·ty .. + 3, columns n0 + 4·tx .. + 3), a barrier. f32 accumulation.
// Tiles in workgroup memory, as vec4 along m (tileA) and n (tileB):
//   tileA[kk·16 + q] = op(A)[m0 + 4q .. + 3, k0 + kk],   tileB[kk·16 + q] = op(B)[k0 + kk, n0 + 4q .. + 3]
//
// This part holds the tiles, the staging positions, the staging of op(A), accumulate, the store
// (lib/matmul_store) and the two entry points
//   main          stageA4 / stageB4 (vec4 loads)
//   main_scalar   stageA1 / stageB1 (scalar loads)
// The including shader declares, with what differs between the two:
//   TRANS_A (bool: A stored [K,M]); params.M, params.N, params.K (u32), params.alpha, params.beta (f32)
//   A: array<f32> and A4: array<vec4<f32>> (views of one binding); C: array<f32> (read_write)
//   fn indexA(m: u32, k: u32) -> u32: op(A)[m, k]'s index in A (m < M, k < K)
//   fn indexC(row: u32, col: u32) -> u32: C[row, col]'s index in C (row < M, col < N)
//   fn stageB4 / stageB1(t: u32, n0: u32, k0: u32): stage thread t's group of four of op(B) at step
//     k0 into tileB (elements past N or K as 0)

// #include "lib/matmul_store"

const TILE: u32 = 64u;  // C block per workgroup (TILE × TILE)
const TK: u32 = 16u;    // K step
const Q: u32 = 16u;     // vec4 per tile row (TILE / 4) = threads per side

var<workgroup> tileA: array<vec4<f32>, 256>;  // TK × Q
var<workgroup> tileB: array<vec4<f32>, 256>;

// What thread t (0..255) stages at step k0. Each operand's tile is 1024 floats = 256 groups of four
// consecutive floats along its contiguous dimension:
//   contiguous along k ([M,K] A, [N,K] B): row r = t / 4 of the 64, k = k0 + 4·(t % 4)
//   contiguous along m / n ([K,M] A, [K,N] B): k = k0 + t / 16, column group q = t % 16
// `r` is the row (m or n) offset in the tile, `k` the absolute k.
struct Stage {
  r: u32,
  k: u32,
}

fn stageAlongK(t: u32, k0: u32) -> Stage { return Stage(t / 4u, k0 + 4u * (t % 4u)); }
fn stageAlongRow(t: u32, k0: u32) -> Stage { return Stage(4u * (t % Q), k0 + t / Q); }

// Writes four values of one row r (m or n) at k .. k + 3 into a tile (transposing into vec4 along r).
fn putAlongKA(s: Stage, k0: u32, v: vec4<f32>) {
  for (var i = 0u; i < 4u; i++) { tileA[(s.k - k0 + i) * Q + s.r / 4u][s.r % 4u] = v[i]; }
}
fn putAlongKB(s: Stage, k0: u32, v: vec4<f32>) {
  for (var i = 0u; i < 4u; i++) { tileB[(s.k - k0 + i) * Q + s.r / 4u][s.r % 4u] = v[i]; }
}

// acc[i] += op(A)[row i of the thread's block, k] · op(B)[k, its four columns] over the staged K step.
fn accumulate(acc: ptr<function, array<vec4<f32>, 4>>, tx: u32, ty: u32) {
  for (var kk = 0u; kk < TK; kk++) {
    let a = tileA[kk * Q + ty];
    let b = tileB[kk * Q + tx];
    (*acc)[0] = fma(vec4<f32>(a.x), b, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(a.y), b, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(a.z), b, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(a.w), b, (*acc)[3]);
  }
}

// op(A)'s tile. Scalar staging: each of the four elements bounds-checked.
fn stageA1(t: u32, m0: u32, k0: u32) {
  if (TRANS_A) {
    let s = stageAlongRow(t, k0);
    var v: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
      let m = m0 + s.r + i;
      if (m < params.M && s.k < params.K) { v[i] = A[indexA(m, s.k)]; }
    }
    tileA[(s.k - k0) * Q + s.r / 4u] = v;
  } else {
    let s = stageAlongK(t, k0);
    let m = m0 + s.r;
    var v: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
      if (m < params.M && s.k + i < params.K) { v[i] = A[indexA(m, s.k + i)]; }
    }
    putAlongKA(s, k0, v);
  }
}

// vec4 staging (4 | the contiguous dimension, so a group never straddles rows). Along m the group is
// in range as a whole (4 | M); along k a group that K cuts is read element by element (matmul_tiled's
// vec4 entry has 4 | K, but matmul_weight_tiled's K is a chunk of W's rows or all its columns).
fn stageA4(t: u32, m0: u32, k0: u32) {
  if (TRANS_A) {
    let s = stageAlongRow(t, k0);
    let m = m0 + s.r;
    var v: vec4<f32>;
    if (m < params.M && s.k < params.K) { v = A4[indexA(m, s.k) / 4u]; }
    tileA[(s.k - k0) * Q + s.r / 4u] = v;
  } else {
    let s = stageAlongK(t, k0);
    let m = m0 + s.r;
    var v: vec4<f32>;
    if (m < params.M) {
      if (s.k + 4u <= params.K) {
        v = A4[indexA(m, s.k) / 4u];
      } else {
        for (var i = 0u; s.k + i < params.K; i++) {
          let e = indexA(m, s.k + i);
          v[i] = A4[e / 4u][e % 4u];
        }
      }
    }
    putAlongKA(s, k0, v);
  }
}

// C[row, col] = alpha · acc + beta · C for the thread's 4×4 block at (m0, n0), acc[i] its row i.
fn storeRows(acc: array<vec4<f32>, 4>, m0: u32, n0: u32) {
  store(transpose(mat4x4<f32>(acc[0], acc[1], acc[2], acc[3])), m0, n0);
}

// The entry points differ only in the staging: one entry point must not use both views of a binding
// (A and A4, B and B4), so each has its own loop.
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < params.K; k0 += TK) {
    stageA4(t, m0, k0);
    stageB4(t, n0, k0);
    workgroupBarrier();
    accumulate(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  storeRows(acc, m0 + 4u * lid.y, n0 + 4u * lid.x);
}

@compute @workgroup_size(16, 16)
fn main_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < params.K; k0 += TK) {
    stageA1(t, m0, k0);
    stageB1(t, n0, k0);
    workgroupBarrier();
    accumulate(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  storeRows(acc, m0 + 4u * lid.y, n0 + 4u * lid.x);
}
