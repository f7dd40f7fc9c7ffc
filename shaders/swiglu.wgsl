// SwiGLU activation, the elementwise part of the Llama / Qwen2 MLP
// down_proj(silu(gate_proj(x)) * up_proj(x)), over flat f32 buffers of n = T·I elements:
//   forward:  H = silu(G)·U,  silu(z) = z·σ(z),  σ(z) = 1/(1 + e^−z)
//   backward: dG = dH·U·silu'(G),  dU = dH·silu(G),  silu'(z) = σ(z)·(1 + z·(1 − σ(z)))
// σ and 1 − σ are both formed from e = e^−|z| ∈ (0, 1] (never overflows): for z ≥ 0, σ = 1/(1 + e) and
// 1 − σ = e/(1 + e); for z < 0 the two swap. So ±100 (or ±1e30) give the limits (silu → z or 0,
// silu' → 1 or 0) instead of Inf/NaN, and 1 − σ keeps its relative accuracy for large z rather than
// cancelling to 0 early. One invocation per element, no workgroup memory: deterministic.

// #include "lib/workgroup"

struct Params {
  n: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
// forward
@group(0) @binding(3) var<storage, read_write> H: array<f32>;
// backward
@group(0) @binding(3) var<storage, read> dH: array<f32>;
@group(0) @binding(4) var<storage, read_write> dG: array<f32>;
@group(0) @binding(5) var<storage, read_write> dU: array<f32>;

const WG: u32 = 256u;

// (σ(z), 1 − σ(z)) without overflow.
fn sigmoid_pair(z: f32) -> vec2<f32> {
  let e = exp(-abs(z));
  let r = 1.0 / (1.0 + e);
  let pair = vec2<f32>(r, e * r);
  return select(pair.yx, pair, z >= 0.0);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  let z = G[i];
  H[i] = (z * sigmoid_pair(z).x) * U[i];
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  let z = G[i];
  let s = sigmoid_pair(z);
  let dh = dH[i];
  // σ + z·σ·(1 − σ): for |z| large one factor of σ·(1 − σ) is 0 (or tiny) and z is finite, so no ∞·0.
  let dsilu = fma(z * s.x, s.y, s.x);
  dG[i] = dh * U[i] * dsilu;
  dU[i] = dh * (z * s.x);
}
