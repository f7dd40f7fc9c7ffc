// Causal self-attention forward on packed sequences (f32), one invocation per (query, head).
//
// qkv  [T, width]: the fused qkv projection. kv_heads ≥ 1 (grouped: multi-query, grouped-query):
//      width = (n_head + 2·kv_heads)·hd, columns [Q (n_head heads) | K (kv_heads) | V (kv_heads)],
//      query head h reads K/V head h / G, G = n_head / kv_heads (Hugging Face repeat_kv);
//      kv_heads = 0: GPT-BigCode multi-head, width = 3·n_head·hd, Hugging Face's [n_head, 3, hd] view
//      (head h: q at 3h·hd, k, v after it).
// mask [T] vec4<i32>: (segment (−1 = padding), key_start, query_end, unused). Non-padding query t
//      attends to keys k with key_start ≤ k ≤ t and segment[k] ≠ −1 (a sliding window is in
//      key_start; segments are never compared).
// out  [T, n_head·hd] (heads contiguous, ready for c_proj); padding queries get zeros.
// lse  [T, n_head]: logsumexp of the query's scaled scores (what backward needs to recompute
//      probabilities); 0 for padding queries.
//
// Workgroup (TQ = 8 queries) × (HPW heads of one K/V head's group): invocation (x, y) is query q0 + x
// of head y of chunk wg.y (see forward).
// Each invocation holds its q row and its output row in private memory (as vec4s) and walks the keys
// one by one with an online softmax (running max and sum, the accumulator rescaled when the max
// grows). There is no workgroup memory and no barrier: K and V rows are read straight from the storage
// buffer (on a CPU driver the caches do the staging).
// The key loop runs over the tile's range [min key_start of its non-padding queries, its last
// non-padding query], which depends only on the workgroup: every invocation reads the same K/V row at
// the same time, and the cost follows Σ len² of the segments, not the pack length². Padding rows are
// skipped by the whole workgroup, so whatever they hold (even NaN) never reaches the output; other
// masked keys of the range (real tokens of a neighbouring segment) enter with p = 0.
// No sharing (G = 1): HPW = 1 (each workgroup reads its own head's K/V).

struct Params {
  T: u32,
  n_head: u32,
  hd: u32,
  kv_heads: u32, // 0: the interleaved multi-head layout
  scale: f32,
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

override HPW: u32 = 1u; // query heads per workgroup (1 without shared K/V)
const TQ: u32 = 8u; // queries per workgroup
const MAXD4: u32 = 64u; // largest head dimension / 4 (rows are held as vec4s)
const NEG: f32 = -3.0e38; // finite "minus infinity": WGSL does not guarantee infinities

/** Query heads per K/V head (G). */
fn group_size() -> u32 {
  if (params.kv_heads != 0u) { return params.n_head / params.kv_heads; }
  return 1u;
}

fn row_width() -> u32 {
  if (params.kv_heads != 0u) { return (params.n_head + 2u * params.kv_heads) * params.hd; }
  return 3u * params.n_head * params.hd;
}

/** Query head h. */
fn q_index(t: u32, h: u32) -> u32 {
  if (params.kv_heads != 0u) { return t * row_width() + h * params.hd; }
  return t * row_width() + 3u * h * params.hd;
}

/** K/V head g. */
fn k_index(t: u32, g: u32) -> u32 {
  if (params.kv_heads != 0u) { return t * row_width() + (params.n_head + g) * params.hd; }
  return t * row_width() + (3u * g + 1u) * params.hd;
}

fn v_index(t: u32, g: u32) -> u32 {
  if (params.kv_heads != 0u) { return t * row_width() + (params.n_head + params.kv_heads + g) * params.hd; }
  return t * row_width() + (3u * g + 2u) * params.hd;
}

/** Floats d..d+3 of the row at `base`, zeros past the head dimension (never another row's values). */
fn row4(base: u32, d: u32) -> vec4<f32> {
  return vec4<f32>(
    select(0.0, qkv[base + d], d < params.hd),
    select(0.0, qkv[base + d + 1u], d + 1u < params.hd),
    select(0.0, qkv[base + d + 2u], d + 2u < params.hd),
    select(0.0, qkv[base + d + 3u], d + 3u < params.hd),
  );
}

@compute @workgroup_size(TQ, HPW)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let T = params.T;
  let q0 = wg.x * TQ;
  let t = q0 + lid.x;
  // wg.y = (K/V head, chunk of HPW heads of its group): the K/V head comes from the workgroup alone,
  // so that K/V indices stay workgroup-uniform. Heads j ≥ G of the last chunk idle.
  let G = group_size();
  let chunks = (G + HPW - 1u) / HPW;
  let kv_head = wg.y / chunks;
  let j = (wg.y % chunks) * HPW + lid.y; // head within the group
  let h = kv_head * G + j;
  let in_range = t < T && j < G;

  // Keys this tile visits: [min key_start, last non-padding query] (workgroup-uniform).
  var lo = i32(T);
  var hi = -1;
  for (var i = 0u; i < TQ; i++) {
    let tt = q0 + i;
    if (tt < T) {
      let m = mask[tt];
      if (m.x != -1) {
        lo = min(lo, m.y);
        hi = i32(tt);
      }
    }
  }

  var q_valid = false;
  var q_start = 0;
  if (in_range) {
    let m = mask[t];
    q_valid = m.x != -1;
    q_start = m.y;
  }
  let HD4 = (params.hd + 3u) / 4u; // vec4s per row
  var q: array<vec4<f32>, MAXD4>;
  var acc: array<vec4<f32>, MAXD4>;
  if (q_valid) {
    let qi = q_index(t, h);
    for (var c = 0u; c < HD4; c++) { q[c] = row4(qi, 4u * c); }
  }

  var m_run = NEG;
  var l_run = 0.0;
  for (var k = lo; k <= hi; k++) {
    // Padding rows are skipped by the whole workgroup; other masked keys get p = 0 (their rows are
    // real tokens of the tile's range, finite, so 0·v stays 0).
    if (mask[k].x == -1) { continue; }
    let ki = k_index(u32(k), kv_head);
    let vi = v_index(u32(k), kv_head);
    var s4 = vec4<f32>(0.0);
    for (var c = 0u; c < HD4; c++) { s4 = fma(q[c], row4(ki, 4u * c), s4); }
    let s = ((s4.x + s4.y) + (s4.z + s4.w)) * params.scale;
    let valid = q_valid && k >= q_start && k <= i32(t);
    if (valid && s > m_run) {
      let correction = exp(m_run - s);
      l_run *= correction;
      for (var c = 0u; c < HD4; c++) { acc[c] *= correction; }
      m_run = s;
    }
    let p = select(0.0, exp(s - m_run), valid);
    l_run += p;
    for (var c = 0u; c < HD4; c++) { acc[c] = fma(vec4<f32>(p), row4(vi, 4u * c), acc[c]); }
  }

  if (in_range) {
    let o = (t * params.n_head + h) * params.hd;
    let inv = select(0.0, 1.0 / l_run, q_valid);
    for (var d = 0u; d < params.hd; d++) { out[o + d] = acc[d / 4u][d % 4u] * inv; }
    lse[t * params.n_head + h] = select(0.0, m_run + log(l_run), q_valid);
  }
}
