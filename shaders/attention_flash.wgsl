// Causal self-attention forward on packed sequences (f32), GPU-class variant (the 'gpu' kernel
// set): FlashAttention-2 style, key tiles staged in workgroup memory. Same bindings, layouts, mask and
// results as shaders/attention.wgsl (the 'cpu' set, one barrier-free invocation per query row):
//   qkv  [T, width] the fused qkv projection, mask [T] (lib/attention_io, lib/attention_mask)
//   out  [T, n_head·hd], lse [T, n_head] (logsumexp of the scaled scores); padding queries get zeros.
//
// Math, per query row i (one token, one head), over the key tiles j = k0 .. k0 + BK − 1:
//   s_ij = scale · q_i·k_j (masked entries left out)
//   m'   = max(m, max_j s_ij),  c = exp(m − m'),  p_ij = exp(s_ij − m')
//   l    = c·l + Σ_j p_ij,      acc = c·acc + Σ_j p_ij v_j,   m = m'
//   out_i = acc / l,  lse_i = m + log l
//
// Workgroup: R = 16 rows × C = 4 threads (shaders/lib/attention_flash.wgsl). Rows are R / hpw query
// tokens × hpw heads of one K/V head's group (query_row): hpw = 1 without sharing (16 tokens of
// one head); multi-query, grouped-query hpw = 1, 2 or 4 heads sharing the K/V head, so every staged
// K/V tile serves all 16 rows. Thread (r, c) keeps its row's q and acc columns (c, c + 4, …) in
// private memory, and the row's m and l (the C threads of a row compute them identically).
// Per key tile, three phases and three barriers:
//   1. stage: the 64 threads load the tile's K and V rows (BK × D4 vec4s each) into workgroup memory
//      (stage_keys), zeros for keys that are padding or past the hull (so even NaN in padding rows
//      never enters);
//   2. partial scores: thread (r, c) dots its q columns with each staged K row → part_s[r][j][c];
//   3. online softmax and accumulate: thread (r, c) sums the C partials of each key in a fixed order
//      (s_ij, the same in all C threads), updates m and l, rescales acc and adds p_ij·v_j for its
//      columns.
// Tile skipping: the key tiles run over the query tile's hull [min key_start, last non-padding query]
// (key_hull), workgroup-uniform, so the cost follows Σ len² of the packed functions, not T²; masked
// keys inside the hull (a neighbouring function, padding) enter with p = 0.
// Deterministic: fixed summation orders, no atomics.

// #include "lib/attention_io"
// #include "lib/attention_mask"
// #include "lib/attention_flash"

@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let r = li / C;
  let c = li % C;
  let row = tile_row(wg, r);
  let hull = tile_hull(wg.x);
  let NCD = D4 / C; // this thread's vec4 columns: c + C·i, i < NCD
  let bk = staged_rows();

  var q: Cols;
  var acc: Cols;
  if (row.valid) {
    let qi = q_index(row.t, row.h);
    for (var i = 0u; i < NCD; i++) { q[i] = qkv4(qi, c + C * i); }
  }
  var m_run = NEG;
  var l_run = 0.0;

  for (var k0 = hull.x; k0 <= hull.y; k0 += i32(BK)) {
    // 1. Stage K and V rows k0 .. k0 + BK − 1.
    stage_keys(li, k0, hull.y, row.kv_head);
    workgroupBarrier();

    // 2. Partial scores over this thread's columns.
    for (var j = 0u; j < bk; j++) {
      var s4 = vec4<f32>(0.0);
      for (var i = 0u; i < NCD; i++) { s4 = fma(q[i], tile_a[j * D4 + c + C * i], s4); }
      part_s[r * PS + j * C + c] = sum4(s4);
    }
    workgroupBarrier();

    // 3. Online softmax over the tile's keys and the accumulate of this thread's columns.
    let base = r * PS;
    var m_new = m_run;
    for (var j = 0u; j < bk; j++) {
      let k = k0 + i32(j);
      let valid = sees_staged(row, j, k);
      let s = sum_part_s(base + j * C) * params.scale;
      if (valid) { m_new = max(m_new, s); }
    }
    let correction = exp(m_run - m_new); // 1 when the max stays (also while m_run = m_new = NEG)
    l_run *= correction;
    for (var i = 0u; i < NCD; i++) { acc[i] *= correction; }
    m_run = m_new;
    for (var j = 0u; j < bk; j++) {
      let k = k0 + i32(j);
      let valid = sees_staged(row, j, k);
      let s = sum_part_s(base + j * C) * params.scale;
      let p = select(0.0, exp(s - m_run), valid);
      l_run += p;
      for (var i = 0u; i < NCD; i++) { acc[i] = fma(vec4<f32>(p), tile_b[j * D4 + c + C * i], acc[i]); }
    }
    workgroupBarrier(); // the next tile's staging overwrites tile_a, tile_b and part_s
  }

  if (row.in_range) {
    let o = o_index(row.t, row.h);
    let inv = select(0.0, 1.0 / l_run, row.valid);
    for (var i = 0u; i < NCD; i++) {
      let d = 4u * (c + C * i);
      for (var e = 0u; e < 4u; e++) {
        if (d + e < params.hd) { out[o + d + e] = acc[i][e] * inv; }
      }
    }
    if (c == 0u) { lse[row.t * params.n_head + row.h] = select(0.0, m_run + log(l_run), row.valid); }
  }
}
