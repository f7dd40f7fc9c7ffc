// The interface of shaders/matmul_weight.wgsl and its tiled variant: the overrides, parameters and
// bindings the host side (src/engine/kernels/linear.ts) sets, the same for both kernel sets, and where
// the elements of A and C are in their buffers.

override FORMAT: u32 = 2u;
override BACKWARD: bool = false;

struct Params {
  M: u32,
  N: u32,
  K: u32,
  lda: u32,
  aOffset: u32,
  ldc: u32,
  cOffset: u32,
  wRows: u32,
  wCols: u32,
  wBase: u32,
  wRowBytes: u32,
  alpha: f32,
  beta: f32,
}

// The two entry points never use both views of A, so they may share the binding number.
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(0) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// A is never transposed here (TRANS_A is what the A loaders of lib/blocked and lib/tiled, shared with
// shaders/matmul.wgsl, need to know). A[m, k] and C[row, col] in their buffers.
const TRANS_A: bool = false;

fn indexA(m: u32, k: u32) -> u32 { return m * params.lda + params.aOffset + k; }

fn indexC(row: u32, col: u32) -> u32 { return row * params.ldc + params.cOffset + col; }
