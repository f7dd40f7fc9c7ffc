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
//
// Two entry points, the same algorithm:
//   main          A and B bound as vec4 rows: the contiguous dimension of each operand is a multiple of 4
//                 (A: K, or M when TRANS_A; B: K, or N when !TRANS_B), so a group of four is wholly in
//                 or out of range; binding offsets are multiples of 16 bytes (matmulVec4 in matmul.ts).
//   main_scalar   scalar loads, any shape.

override TRANS_A: bool = false;
override TRANS_B: bool = true;

const TILE: u32 = 64u;  // C block per workgroup (TILE × TILE)
const TK: u32 = 16u;    // K step
const Q: u32 = 16u;     // vec4 per tile row (TILE / 4) = threads per side

struct Params {
  M: u32,
  N: u32,
  K: u32,
  alpha: f32,
  beta: f32,
}

// The two entry points never use both views, so they may share binding numbers.
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(0) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

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

// op(A)[m, k] and op(B)[k, n] in their buffers (callers keep m < M, n < N, k < K).
fn indexA(m: u32, k: u32) -> u32 {
  if (TRANS_A) { return k * params.M + m; }
  return m * params.K + k;
}
fn indexB(k: u32, n: u32) -> u32 {
  if (TRANS_B) { return n * params.K + k; }
  return k * params.N + n;
}

// Scalar staging: each of the four elements bounds-checked.
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
    if (m < params.M && s.k < params.K) { v = A4[indexA(m, s.k) / 4u]; }
    putAlongKA(s, k0, v);
  }
}

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

fn store(acc: array<vec4<f32>, 4>, m0: u32, n0: u32) {
  for (var i = 0u; i < 4u; i++) {
    let row = m0 + i;
    if (row >= params.M) { return; }
    for (var j = 0u; j < 4u; j++) {
      let col = n0 + j;
      if (col >= params.N) { break; }
      let idx = row * params.N + col;
      var value = params.alpha * acc[i][j];
      // beta == 0 must not read C: it may hold garbage (NaN) from a pooled buffer.
      if (params.beta != 0.0) { value += params.beta * C[idx]; }
      C[idx] = value;
    }
  }
}

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
  store(acc, m0 + 4u * lid.y, n0 + 4u * lid.x);
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
  store(acc, m0 + 4u * lid.y, n0 + 4u * lid.x);
}
