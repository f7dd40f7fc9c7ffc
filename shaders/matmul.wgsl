// Tiled f32 matmul: C[M,N] = alpha * op(A) · op(B) + beta * C, row-major.
//   TRANS_A = false: A is [M,K];  true: A is stored [K,M]  (dyᵀ·x in backward)
//   TRANS_B = false: B is [K,N];  true: B is stored [N,K]  (x·Wᵀ with W [out,in] in forward)
// A 64×64 output tile per workgroup of 16×16 threads, each thread 4×4 outputs strided by 16 so
// neighbouring threads touch neighbouring addresses. Tiles are zero-padded at the edges, so any
// M, N, K works (no multiple-of-tile requirement).

override TRANS_A: bool = false;
override TRANS_B: bool = true;

struct Params {
  M: u32,
  N: u32,
  K: u32,
  alpha: f32,
  beta: f32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const TILE: u32 = 64u;
const TK: u32 = 16u;
const THREADS: u32 = 256u;

var<workgroup> tileA: array<array<f32, TILE>, TK>; // [k][m]
var<workgroup> tileB: array<array<f32, TILE>, TK>; // [k][n]

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= params.M || k >= params.K) { return 0.0; }
  if (TRANS_A) { return A[k * params.M + m]; }
  return A[m * params.K + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  if (n >= params.N || k >= params.K) { return 0.0; }
  if (TRANS_B) { return B[n * params.K + k]; }
  return B[k * params.N + n];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  var acc: array<array<f32, 4>, 4>;

  for (var k0 = 0u; k0 < params.K; k0 += TK) {
    // Each thread stages 4 elements of each tile; the index order follows the contiguous axis in memory.
    for (var l = 0u; l < 4u; l++) {
      let i = tid + l * THREADS;
      if (TRANS_A) {
        tileA[i / TILE][i % TILE] = loadA(row0 + i % TILE, k0 + i / TILE);
      } else {
        tileA[i % TK][i / TK] = loadA(row0 + i / TK, k0 + i % TK);
      }
      if (TRANS_B) {
        tileB[i % TK][i / TK] = loadB(k0 + i % TK, col0 + i / TK);
      } else {
        tileB[i / TILE][i % TILE] = loadB(k0 + i / TILE, col0 + i % TILE);
      }
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = tileA[k][lid.y + 16u * i];
        b[i] = tileB[k][lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y + 16u * i;
    if (row >= params.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x + 16u * j;
      if (col >= params.N) { continue; }
      let idx = row * params.N + col;
      var value = params.alpha * acc[i][j];
      // beta == 0 must not read C: it may hold garbage (NaN) from a pooled buffer.
      if (params.beta != 0.0) { value += params.beta * C[idx]; }
      C[idx] = value;
    }
  }
}
