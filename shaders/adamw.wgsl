// AdamW, in place over a flat f32 parameter buffer, as torch.optim.AdamW (amsgrad=False, maximize=False):
//   g  = grad · clip.scale
//   p  = p · (1 − lr·wd)
//   m  = m + (1 − β1)·(g − m)                 (torch's lerp form of β1·m + (1 − β1)·g)
//   v  = β2·v + (1 − β2)·g²
//   p  = p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
// The clip buffer is gradnorm's output [sumsq, norm, scale, nonFinite]: the clip factor is read on the
// GPU (no CPU round trip), and with SKIP set a non-finite gradient leaves p, m and v untouched.
// Step-dependent scalars (bias corrections) are computed in float64 on the CPU into `hyper`, a uniform
// shared by all parameter buffers and rewritten between steps.

// #include "lib/workgroup"

struct Hyper {
  lr: f32,
  beta1: f32,
  beta2: f32,
  eps: f32,
  stepSize: f32, // lr / (1 − β1^t)
  bc2Sqrt: f32, // sqrt(1 − β2^t)
}

struct Params {
  n: u32,
  weightDecay: f32,
  skipNonFinite: u32,
  lrScale: f32, // this tensor's learning rate as a multiple of hyper.lr (1 for most; an adapter group's own lr)
}

@group(0) @binding(0) var<uniform> hyper: Hyper;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> P: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> M: array<f32>;
@group(0) @binding(5) var<storage, read_write> V: array<f32>;
@group(0) @binding(6) var<storage, read> clip: array<f32, 4>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.n) { return; }
  if (params.skipNonFinite != 0u && clip[3] != 0.0) { return; }
  let g = G[i] * clip[2];
  var p = P[i];
  if (params.weightDecay != 0.0) { p *= 1.0 - hyper.lr * params.lrScale * params.weightDecay; }
  var m = M[i];
  m += (1.0 - hyper.beta1) * (g - m);
  let v = hyper.beta2 * V[i] + (1.0 - hyper.beta2) * g * g;
  p -= hyper.stepSize * params.lrScale * m / (sqrt(v) / hyper.bc2Sqrt + hyper.eps);
  P[i] = p;
  M[i] = m;
  V[i] = v;
}
