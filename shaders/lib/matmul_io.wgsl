// The interface of shaders/matmul.wgsl and its tiled variant: the overrides, parameters and bindings
// the host side (src/engine/kernels/matmul.ts) sets, the same for both kernel sets, and where the
// elements of the operands are in their buffers.

override TRANS_A: bool = false;
override TRANS_B: bool = true;

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

// op(A)[m, k], op(B)[k, n] and C[row, col] in their buffers (callers keep m < M, n < N, k < K).
fn indexA(m: u32, k: u32) -> u32 {
  if (TRANS_A) { return k * params.M + m; }
  return m * params.K + k;
}

fn indexB(k: u32, n: u32) -> u32 {
  if (TRANS_B) { return n * params.K + k; }
  return k * params.N + n;
}

fn indexC(row: u32, col: u32) -> u32 { return row * params.N + col; }
