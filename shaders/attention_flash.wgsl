// Causal self-attention forward on packed sequences (f32), GPU-class variant (the 'gpu' kernel
// set): FlashAttention-2 style, key tiles staged in workgroup memory. Same bindings, layouts, mask and
// results as shaders/attention.wgsl (the 'cpu' set, one barrier-free invocation per query row):
//   qkv  [T, width] the fused qkv projection (kv_heads ≥ 1: [Q | K (kv_heads) | V (kv_heads)], query
//        head h reads K/V head h / G; kv_heads = 0: GPT-BigCode multi-head, HF's [n_head, 3, hd])
//   mask [T] vec4<i32> (segment (−1 = padding), key_start, query_end, unused): non-padding query t
//        attends to keys k with key_start ≤ k ≤ t and segment[k] ≠ −1 (a sliding window is in
//        key_start)
//   out  [T, n_head·hd], lse [T, n_head] (logsumexp of the scaled scores); padding queries get zeros.
//
// Math, per query row i (one token, one head), over the key tiles j = k0 .. k0 + BK − 1:
//   s_ij = scale · q_i·k_j (masked entries left out)
//   m'   = max(m, max_j s_ij),  c = exp(m − m'),  p_ij = exp(s_ij − m')
//   l    = c·l + Σ_j p_ij,      acc = c·acc + Σ_j p_ij v_j,   m = m'
//   out_i = acc / l,  lse_i = m + log l
//
// Workgroup: R = 16 rows × C = 4 threads (shaders/lib/attention_flash.wgsl). Rows are R / hpw query
// tokens × hpw heads of one K/V head's group (query_heads): hpw = 1 without sharing (16 tokens of
// one head); multi-query, grouped-query hpw = 1, 2 or 4 heads sharing the K/V head, so every staged
// K/V tile serves all 16 rows. Thread (r, c) keeps its
// row's q and acc columns (c, c + 4, …) in private memory, and the row's m and l (the C threads of a
// row compute them identically).
// Per key tile, three phases and three barriers:
//   1. stage: the 64 threads load the tile's K and V rows (BK × D4 vec4s each) into workgroup memory,
//      zeros for keys that are padding or past the hull (so even NaN in padding rows never enters);
//   2. partial scores: thread (r, c) dots its q columns with each staged K row → part[r][j][c];
//   3. online softmax and accumulate: thread (r, c) sums the C partials of each key in a fixed order
//      (s_ij, the same in all C threads), updates m and l, rescales acc and adds p_ij·v_j for its
//      columns.
// Tile skipping: the key tiles run over the query tile's hull [min key_start, last non-padding query]
// (key_hull), workgroup-uniform, so the cost follows Σ len² of the packed functions, not T²; masked
// keys inside the hull (a neighbouring function, padding) enter with p = 0.
// Deterministic: fixed summation orders, no atomics.

struct Params {
  T: u32,
  n_head: u32,
  hd: u32,
  kv_heads: u32, // 0: the interleaved multi-head layout
  scale: f32,
  head_groups: u32,
  hpw: u32, // query heads per workgroup (1 without shared K/V)
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// #include "lib/attention_flash"

var<workgroup> k_tile: array<vec4<f32>, BK * D4>;
var<workgroup> v_tile: array<vec4<f32>, BK * D4>;
var<workgroup> part: array<f32, R * PS>; // partial scores [row][key][thread], row stride PS
var<workgroup> key_ok: array<u32, BK>; // 1: the staged key is a real token of the hull

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let T = params.T;
  let hpw = params.hpw;
  let n_tok = tile_tokens();
  let q0 = wg.x * n_tok;
  let r = li / C;
  let c = li % C;
  let t = q0 + r / hpw;
  let heads = query_heads(wg.y, r);
  let kv_head = heads.x; // workgroup-uniform
  let h = kv_head * group_size() + heads.y;
  let hull = key_hull(q0, n_tok);
  let NCD = D4 / C; // this thread's vec4 columns: c + C·i, i < NCD
  let bk = min(BK, params.T + BK); // = BK (see BK in lib/attention_flash.wgsl)

  let in_range = t < T && heads.y < group_size();
  var q_valid = false;
  var q_start = 0;
  if (in_range) {
    let m = mask[t];
    q_valid = m.x != -1;
    q_start = m.y;
  }
  var q: array<vec4<f32>, NC>;
  var acc: array<vec4<f32>, NC>;
  if (q_valid) {
    let qi = q_index(t, h);
    for (var i = 0u; i < NCD; i++) { q[i] = qkv4(qi, c + C * i); }
  }
  var m_run = NEG;
  var l_run = 0.0;

  for (var k0 = hull.x; k0 <= hull.y; k0 += i32(BK)) {
    // 1. Stage K and V rows k0 .. k0 + BK − 1.
    for (var e = li; e < BK * D4; e += 64u) {
      let j = e / D4;
      let c4 = e % D4;
      let k = k0 + i32(j);
      var kv = vec4<f32>(0.0);
      var vv = vec4<f32>(0.0);
      if (k <= hull.y && mask[k].x != -1) {
        kv = qkv4(k_index(u32(k), kv_head), c4);
        vv = qkv4(v_index(u32(k), kv_head), c4);
      }
      k_tile[e] = kv;
      v_tile[e] = vv;
    }
    if (li < BK) {
      let k = k0 + i32(li);
      key_ok[li] = select(0u, 1u, k <= hull.y && mask[k].x != -1);
    }
    workgroupBarrier();

    // 2. Partial scores over this thread's columns.
    for (var j = 0u; j < bk; j++) {
      var s4 = vec4<f32>(0.0);
      for (var i = 0u; i < NCD; i++) { s4 = fma(q[i], k_tile[j * D4 + c + C * i], s4); }
      part[r * PS + j * C + c] = (s4.x + s4.y) + (s4.z + s4.w);
    }
    workgroupBarrier();

    // 3. Online softmax over the tile's keys and the accumulate of this thread's columns.
    let base = r * PS;
    var m_new = m_run;
    for (var j = 0u; j < bk; j++) {
      let k = k0 + i32(j);
      let valid = q_valid && key_ok[j] != 0u && k >= q_start && k <= i32(t);
      let p4 = base + j * C;
      let s = ((part[p4] + part[p4 + 1u]) + (part[p4 + 2u] + part[p4 + 3u])) * params.scale;
      if (valid) { m_new = max(m_new, s); }
    }
    let correction = exp(m_run - m_new); // 1 when the max stays (also while m_run = m_new = NEG)
    l_run *= correction;
    for (var i = 0u; i < NCD; i++) { acc[i] *= correction; }
    m_run = m_new;
    for (var j = 0u; j < bk; j++) {
      let k = k0 + i32(j);
      let valid = q_valid && key_ok[j] != 0u && k >= q_start && k <= i32(t);
      let p4 = base + j * C;
      let s = ((part[p4] + part[p4 + 1u]) + (part[p4 + 2u] + part[p4 + 3u])) * params.scale;
      let p = select(0.0, exp(s - m_run), valid);
      l_run += p;
      for (var i = 0u; i < NCD; i++) { acc[i] = fma(vec4<f32>(p), v_tile[j * D4 + c + C * i], acc[i]); }
    }
    workgroupBarrier(); // the next tile's staging overwrites k_tile, v_tile and part
  }

  if (in_range) {
    let o = o_index(t, h);
    let inv = select(0.0, 1.0 / l_run, q_valid);
    for (var i = 0u; i < NCD; i++) {
      let d = 4u * (c + C * i);
      for (var e = 0u; e < 4u; e++) {
        if (d + e < params.hd) { out[o + d + e] = acc[i][e] * inv; }
      }
    }
    if (c == 0u) { lse[t * params.n_head + h] = select(0.0, m_run + log(l_run), q_valid); }
  }
}
