// The interface of shaders/rmsnorm.wgsl and its GPU-class variant rmsnorm_rows.wgsl: the parameters and
// bindings the host side (src/engine/kernels/rmsnorm.ts) sets, the same for both kernel sets.

struct Params {
  T: u32,
  C: u32,
  eps: f32,
  accumulate: u32, // backward: add to dX; backward_params: add to dweight
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
// forward
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstdOut: array<f32>;
// backward (weight at 2 as in forward)
@group(0) @binding(3) var<storage, read> rstdIn: array<f32>;
@group(0) @binding(4) var<storage, read> dY: array<f32>;
@group(0) @binding(5) var<storage, read_write> dX: array<f32>;
// backward_params (X at 1 as in forward)
@group(0) @binding(2) var<storage, read> rstdP: array<f32>;
@group(0) @binding(3) var<storage, read> dYP: array<f32>;
@group(0) @binding(4) var<storage, read_write> dweight: array<f32>;
