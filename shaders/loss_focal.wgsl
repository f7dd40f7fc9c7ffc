// Focal loss over F functions with two classes and its gradient (one workgroup):
//   loss = (1/count) Σ_f w_f · FL_f,  FL = −α_t (1 − p_t)^γ log p_t,  p = softmax(logits_f), t = label_f
//   dlogits[f, t] = s·g·p_o, dlogits[f, o] = −s·g·p_o with s = w_f/count, o = 1 − t,
//   g = −α_t [(1−p_t)^γ − γ (1−p_t)^γ · p_t · log p_t / (1 − p_t)]
// With two classes 1 − p_t = p_o exactly, so everything is written through d = z_o − z_t without
// cancellation: log p_t = −softplus(d). γ, α, count live in a uniform rewritten between steps.
// α_t = alpha for label 1 and 1 − alpha for label 0 when has_alpha, else 1.

struct Params {
  F: u32,
  count: u32,
  gamma: f32,
  alpha: f32,
  has_alpha: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;

const WG: u32 = 256u;
var<workgroup> partial: array<f32, WG>;

fn log1p_small(x: f32) -> f32 {
  // log(1 + x) for x ≥ 0; the series keeps full precision where 1 + x rounds.
  if (x < 1e-3) { return x * (1.0 - x * (0.5 - x / 3.0)); }
  return log(1.0 + x);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  var sum = 0.0;
  let invCount = select(0.0, 1.0 / f32(params.count), params.count > 0u);
  for (var f = lid; f < params.F; f += WG) {
    if (f >= params.count) {
      dlogits[2u * f] = 0.0;
      dlogits[2u * f + 1u] = 0.0;
      continue;
    }
    let t = min(labels[f], 1u);
    let o = 1u - t;
    let d = logits[2u * f + o] - logits[2u * f + t];
    var logPt: f32;
    var pt: f32;
    var po: f32;
    if (d <= 0.0) {
      let e = exp(d); // p_o / p_t ≤ 1
      logPt = -log1p_small(e);
      pt = 1.0 / (1.0 + e);
      po = e / (1.0 + e);
    } else {
      let e = exp(-d); // p_t / p_o < 1
      logPt = -(d + log1p_small(e));
      pt = e / (1.0 + e);
      po = 1.0 / (1.0 + e);
    }
    // log p_t / (1 − p_t) → −1 as p_o → 0.
    var ratio = -1.0;
    if (po > 1e-30) { ratio = logPt / po; }
    var alphaT = 1.0;
    if (params.has_alpha != 0u) { alphaT = select(1.0 - params.alpha, params.alpha, t == 1u); }
    var modulator = 1.0;
    var dmod = 0.0;
    if (params.gamma != 0.0) {
      modulator = select(0.0, pow(po, params.gamma), po > 0.0);
      dmod = params.gamma * modulator * pt * ratio;
    }
    let w = weights[f];
    sum += w * (-alphaT * modulator * logPt);
    let g = -alphaT * (modulator - dmod) * w * invCount;
    dlogits[2u * f + t] = g * po;
    dlogits[2u * f + o] = -g * po;
  }
  partial[lid] = sum;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { loss[0] = partial[0] * invCount; }
}
