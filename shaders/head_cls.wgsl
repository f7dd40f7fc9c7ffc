// Classification head on the final hidden state of each function's last token (bias-free linear, 2
// classes), score.weight [2, D] as in Hugging Face's GPTBigCodeForSequenceClassification.
//   forward:          logits[f, j] = Σ_i hidden[rows[f], i] · score[j, i]          (one workgroup per f)
//   backward_hidden:  dhidden[t, i] = Σ_j dlogits[fn[t], j] · score[j, i] if token t is the last token
//                     of function fn[t] ≥ 0, else 0 (writes every element: no clear needed)
//   backward_score:   dscore[j, i] (+)= Σ_f dlogits[f, j] · hidden[rows[f], i]  (accumulate flag)
// Bindings: params first, then the buffers in the order of each entry's declaration below.
// Slots f ≥ params.count are unused capacity: their logits are written as 0 and they add nothing.

// #include "lib/workgroup"

struct Params {
  T: u32,
  D: u32,
  F: u32,
  count: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> hidden: array<f32>;
@group(0) @binding(2) var<storage, read> score: array<f32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;

@group(0) @binding(1) var<storage, read> scoreH: array<f32>;
@group(0) @binding(2) var<storage, read> rowFunction: array<i32>;
@group(0) @binding(3) var<storage, read> dlogitsIn: array<f32>;
@group(0) @binding(4) var<storage, read_write> dhidden: array<f32>;

@group(0) @binding(1) var<storage, read> hiddenB: array<f32>;
@group(0) @binding(2) var<storage, read> rowsB: array<u32>;
@group(0) @binding(3) var<storage, read> dlogitsB: array<f32>;
@group(0) @binding(4) var<storage, read_write> dscore: array<f32>;

const WG: u32 = 64u;
var<workgroup> partial: array<vec2<f32>, WG>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let f = workgroupIndex(wg, nwg);
  if (f >= params.F) { return; }
  let D = params.D;
  var acc = vec2<f32>(0.0, 0.0);
  if (f < params.count) {
    let base = rows[f] * D;
    for (var i = lid; i < D; i += WG) {
      let h = hidden[base + i];
      acc += vec2<f32>(h * score[i], h * score[D + i]);
    }
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    logits[2u * f] = partial[0].x;
    logits[2u * f + 1u] = partial[0].y;
  }
}

@compute @workgroup_size(256)
fn backward_hidden(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let idx = invocationIndex(wg, nwg, lid, 256u);
  if (idx >= params.T * params.D) { return; }
  let t = idx / params.D;
  let i = idx % params.D;
  let f = rowFunction[t];
  var v = 0.0;
  if (f >= 0) {
    let fu = u32(f);
    v = dlogitsIn[2u * fu] * scoreH[i] + dlogitsIn[2u * fu + 1u] * scoreH[params.D + i];
  }
  dhidden[idx] = v;
}

@compute @workgroup_size(256)
fn backward_score(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let idx = invocationIndex(wg, nwg, lid, 256u);
  if (idx >= 2u * params.D) { return; }
  let j = idx / params.D;
  let i = idx % params.D;
  var acc = 0.0;
  for (var f = 0u; f < params.count; f++) {
    acc = fma(dlogitsB[2u * f + j], hiddenB[rowsB[f] * params.D + i], acc);
  }
  if (params.accumulate != 0u) { acc += dscore[idx]; }
  dscore[idx] = acc;
}
