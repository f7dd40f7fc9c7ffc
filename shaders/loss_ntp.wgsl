// Next-token softmax cross-entropy over logits [T, V] (lm_head tied to wte), in place:
//   rows: one workgroup per token t (folded into y/z). target[t] < 0 (no next token in its segment or
//         pack, padding): the row becomes 0 and its loss 0. Otherwise the row is replaced by
//         dlogits = (softmax − onehot(target)) · inv_count and rowLoss[t] = logsumexp − z_target.
//   reduce: loss[0] = inv_count · Σ_t rowLoss[t] (one workgroup).
// inv_count = 1 / (number of targets ≥ 0) lives in a uniform rewritten with each batch.

// #include "lib/workgroup"

struct Params {
  T: u32,
  V: u32,
  inv_count: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> rowLoss: array<f32>;

@group(0) @binding(1) var<storage, read> rowLossIn: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

fn reduceMax(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduceSum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = workgroupIndex(wg, nwg);
  if (t >= params.T) { return; } // uniform per workgroup: barriers below stay in uniform control flow
  let V = params.V;
  let base = t * V;
  let y = targets[t];
  if (y < 0) {
    for (var j = lid; j < V; j += WG) { logits[base + j] = 0.0; }
    if (lid == 0u) { rowLoss[t] = 0.0; }
    return;
  }
  var m = -3.402823e38;
  for (var j = lid; j < V; j += WG) { m = max(m, logits[base + j]); }
  m = reduceMax(lid, m);
  var s = 0.0;
  for (var j = lid; j < V; j += WG) { s += exp(logits[base + j] - m); }
  s = reduceSum(lid, s);
  let lse = m + log(s);
  let zy = logits[base + u32(y)];
  workgroupBarrier();
  for (var j = lid; j < V; j += WG) {
    let p = exp(logits[base + j] - lse);
    logits[base + j] = (p - select(0.0, 1.0, j == u32(y))) * params.inv_count;
  }
  if (lid == 0u) { rowLoss[t] = lse - zy; }
}

@compute @workgroup_size(WG)
fn reduce(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var t = lid; t < params.T; t += WG) { s += rowLossIn[t]; }
  s = reduceSum(lid, s);
  if (lid == 0u) { loss[0] = s * params.inv_count; }
}
