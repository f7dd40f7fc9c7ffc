// Attention backward with head groups (grouped layout: multi-query, grouped-query): sums the N
// partial (dK | dV) rows written by backward_dkv (shaders/attention_backward.wgsl,
// attention_flash_backward.wgsl) in a fixed order, so the result is deterministic.
//   partials [N, T, 2·kv_heads·hd]: row (n, t) = scale-applied dK of token t for every K/V head, each
//            over the query heads of part n of its group, then dV.
//   d_qkv    [T, (n_head + 2·kv_heads)·hd]: dK goes to columns n_head·hd.., dV right after (the same
//            columns as the partial row), the Q columns are left alone (backward_dq writes them).
// One thread per (token, column of 2·kv_heads·hd), 1-D grid folded into y when large.

struct Params {
  T: u32,
  n_head: u32,
  hd: u32,
  head_groups: u32,
  // Workgroups along x (to unfold the grid).
  groups_x: u32,
  kv_heads: u32,
}

@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> d_qkv: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let idx = (wg.y * params.groups_x + wg.x) * 256u + tid;
  let cols = 2u * params.kv_heads * params.hd;
  if (idx >= params.T * cols) { return; }
  let t = idx / cols;
  let col = idx % cols;
  var sum = 0.0;
  for (var g = 0u; g < params.head_groups; g++) { sum += partials[(g * params.T + t) * cols + col]; }
  d_qkv[t * (params.n_head + 2u * params.kv_heads) * params.hd + params.n_head * params.hd + col] = sum;
}
