// The interface of shaders/layernorm.wgsl and its GPU-class variant layernorm_rows.wgsl: the parameters
// and bindings the host side (src/engine/kernels/layernorm.ts) sets, the same for both kernel sets.

struct Params {
  T: u32,
  C: u32,
  eps: f32,
  accumulate: u32, // backward: add to dX; backward_params: add to dgamma/dbeta
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
// forward
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> meanOut: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstdOut: array<f32>;
// backward (gamma at 2 as in forward)
@group(0) @binding(3) var<storage, read> meanIn: array<f32>;
@group(0) @binding(4) var<storage, read> rstdIn: array<f32>;
@group(0) @binding(5) var<storage, read> dY: array<f32>;
@group(0) @binding(6) var<storage, read_write> dX: array<f32>;
// backward_params (X at 1, dY at 5 as in backward)
@group(0) @binding(2) var<storage, read> meanP: array<f32>;
@group(0) @binding(3) var<storage, read> rstdP: array<f32>;
@group(0) @binding(4) var<storage, read> dYP: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;
