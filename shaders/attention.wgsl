// Causal self-attention forward on packed sequences (f32), one invocation per (query, head).
//
// qkv  [T, width]: the fused qkv projection; mask [T] vec4<i32>: which keys each query sees (the
//      layouts: lib/attention_io, lib/attention_mask).
// out  [T, n_head·hd] (heads contiguous, ready for c_proj); padding queries get zeros.
// lse  [T, n_head]: logsumexp of the query's scaled scores (what backward needs to recompute
//      probabilities); 0 for padding queries.
//
// Workgroup (TQ = 8 queries) × (HPW heads of one K/V head's group): invocation (x, y) is query
// wg.x·TQ + x of head y of chunk wg.y (tile_row, query_row). No sharing (G = 1): HPW = 1 (each
// workgroup reads its own head's K/V).
// Each invocation holds its q row and its output row in private memory (as vec4s) and walks the keys
// one by one with an online softmax (running max and sum, the accumulator rescaled when the max
// grows). There is no workgroup memory and no barrier: K and V rows are read straight from the storage
// buffer (lib/attention_rows). The key loop runs over the tile's hull (key_hull), workgroup-uniform:
// padding rows are skipped by the whole workgroup, so whatever they hold (even NaN) never reaches the
// output; other masked keys of the range (real tokens of a neighbouring segment) enter with p = 0.

// #include "lib/attention_io"
// #include "lib/attention_mask"
// #include "lib/attention_rows"

@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(TQ, HPW)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = tile_row(wg, lid);
  let hull = tile_hull(wg.x);
  let HD4 = hd4();
  var q: Row;
  var acc: Row;
  if (row.valid) {
    let qi = q_index(row.t, row.h);
    for (var c = 0u; c < HD4; c++) { q[c] = qkv4(qi, c); }
  }

  var m_run = NEG;
  var l_run = 0.0;
  for (var k = hull.x; k <= hull.y; k++) {
    // Padding rows are skipped by the whole workgroup; other masked keys get p = 0 (their rows are
    // real tokens of the tile's range, finite, so 0·v stays 0).
    if (mask[k].x == -1) { continue; }
    let ki = k_index(u32(k), row.kv_head);
    let vi = v_index(u32(k), row.kv_head);
    var s4 = vec4<f32>(0.0);
    for (var c = 0u; c < HD4; c++) { s4 = fma(q[c], qkv4(ki, c), s4); }
    let s = sum4(s4) * params.scale;
    let valid = sees(row, k);
    if (valid && s > m_run) {
      let correction = exp(m_run - s);
      l_run *= correction;
      for (var c = 0u; c < HD4; c++) { acc[c] *= correction; }
      m_run = s;
    }
    let p = select(0.0, exp(s - m_run), valid);
    l_run += p;
    for (var c = 0u; c < HD4; c++) { acc[c] = fma(vec4<f32>(p), qkv4(vi, c), acc[c]); }
  }

  if (row.in_range) {
    let o = o_index(row.t, row.h);
    let inv = select(0.0, 1.0 / l_run, row.valid);
    for (var d = 0u; d < params.hd; d++) { out[o + d] = acc[d / 4u][d % 4u] * inv; }
    lse[row.t * params.n_head + row.h] = select(0.0, m_run + log(l_run), row.valid);
  }
}
