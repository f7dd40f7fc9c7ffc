// GPT-BigCode self-attention forward on packed sequences, flash-attention style (f32).
//
// qkv  [T, width]: the c_attn output. multi_query = 1: width = (n_head + 2)·hd, columns
//      [Q (heads contiguous) | K | V] (one K/V head shared by all query heads); multi_query = 0:
//      width = 3·n_head·hd, Hugging Face's [n_head, 3, hd] view (head h: q at 3h·hd, k, v after it).
// mask [T] vec4<i32>: (segment (−1 = padding), key_start, query_end, unused). Non-padding query t
//      attends to keys k with key_start ≤ k ≤ t and segment[k] ≠ −1.
// out  [T, n_head·hd] (heads contiguous, ready for c_proj); padding queries get zeros.
// lse  [T, n_head]: logsumexp of the query's scaled scores (what backward needs to recompute
//      probabilities); 0 for padding queries.
//
// One workgroup per (tile of B = 16 queries, head). A tile visits only the key tiles in
// [min key_start of its non-padding queries, its last non-padding query], so the cost follows
// Σ len² of the segments, not the pack length². Q, K and V pass through workgroup memory in chunks of
// DC = 64 columns of the head dimension (any hd ≤ B·MAXC); the softmax is online (running max and sum
// per query row, rescaling the accumulator), masked entries never enter it.
// Thread (r, c) = (tid / 16, tid % 16): score phase computes S[r][c] (query q0 + r, key k0 + c); output
// phase owns out[q0 + r][d] for d ≡ c (mod 16).
// V rows of padding tokens and rows past the range (the last key tile may overhang it) are staged as
// zeros, so what those rows hold (even NaN) never reaches another function's output.

struct Params {
  T: u32,
  n_head: u32,
  hd: u32,
  multi_query: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const B: u32 = 16u;
const DC: u32 = 64u; // head-dimension columns staged per chunk
const MAXC: u32 = 16u; // hd ≤ B·MAXC = 256
const NEG: f32 = -3.0e38; // finite "minus infinity": WGSL does not guarantee infinities

var<workgroup> qs: array<array<f32, DC + 1>, B>; // [query][d] chunk (+1: avoid bank conflicts)
var<workgroup> ks: array<array<f32, DC + 1>, B>; // [key][d] chunk of K, then of V
var<workgroup> sc: array<array<f32, 17>, B>; // masked scaled scores [query][key]
var<workgroup> pr: array<array<f32, 17>, B>; // unnormalised probabilities [query][key]
var<workgroup> range_lo: i32;
var<workgroup> range_hi: i32;

/** A non-padding token. Rows of padding tokens are staged as zeros, so whatever they hold (even NaN)
 * cannot leak into real rows through a 0·x product. */
fn is_token(t: u32) -> bool {
  return t < params.T && mask[t].x != -1;
}

fn row_width() -> u32 {
  if (params.multi_query != 0u) { return (params.n_head + 2u) * params.hd; }
  return 3u * params.n_head * params.hd;
}

fn q_index(t: u32, h: u32, d: u32) -> u32 {
  if (params.multi_query != 0u) { return t * row_width() + h * params.hd + d; }
  return t * row_width() + 3u * h * params.hd + d;
}

fn k_index(t: u32, h: u32, d: u32) -> u32 {
  if (params.multi_query != 0u) { return t * row_width() + params.n_head * params.hd + d; }
  return t * row_width() + (3u * h + 1u) * params.hd + d;
}

fn v_index(t: u32, h: u32, d: u32) -> u32 {
  if (params.multi_query != 0u) { return t * row_width() + (params.n_head + 1u) * params.hd + d; }
  return t * row_width() + (3u * h + 2u) * params.hd + d;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let T = params.T;
  let hd = params.hd;
  let h = wg.y;
  let q0 = wg.x * B;
  let r = tid / B;
  let c = tid % B;
  let t = q0 + r;

  var q_valid = false;
  var q_start = 0;
  if (t < T) {
    let m = mask[t];
    q_valid = m.x != -1;
    q_start = m.y;
  }

  // Keys this tile visits: [min key_start, last non-padding query].
  if (tid == 0u) {
    var lo = i32(T);
    var hi = -1;
    for (var i = 0u; i < B; i++) {
      let tt = q0 + i;
      if (tt < T) {
        let m = mask[tt];
        if (m.x != -1) {
          lo = min(lo, m.y);
          hi = i32(tt);
        }
      }
    }
    range_lo = lo;
    range_hi = hi;
  }
  let lo = workgroupUniformLoad(&range_lo);
  let hi = workgroupUniformLoad(&range_hi);

  var m_run = NEG;
  var l_run = 0.0;
  var acc: array<f32, MAXC>;

  for (var k0 = lo; k0 <= hi; k0 += i32(B)) {
    // S[r][c] = q · k over DC-wide chunks of the head dimension (thread tid stages elements tid + 256·m).
    var s = 0.0;
    for (var d0 = 0u; d0 < hd; d0 += DC) {
      for (var m = 0u; m < B * DC / 256u; m++) {
        let row = (tid + 256u * m) / DC;
        let col = (tid + 256u * m) % DC;
        let d = d0 + col;
        var qv = 0.0;
        var kv = 0.0;
        if (d < hd) {
          if (q0 + row < T) { qv = qkv[q_index(q0 + row, h, d)]; }
          if (u32(k0) + row < T) { kv = qkv[k_index(u32(k0) + row, h, d)]; }
        }
        qs[row][col] = qv;
        ks[row][col] = kv;
      }
      workgroupBarrier();
      let n = min(DC, hd - d0);
      for (var e = 0u; e < n; e++) { s = fma(qs[r][e], ks[c][e], s); }
      workgroupBarrier();
    }

    let k = k0 + i32(c);
    var valid = q_valid && k >= q_start && k <= i32(t);
    if (valid) { valid = mask[k].x != -1; }
    let sv = select(NEG, s * params.scale, valid);
    sc[r][c] = sv;
    workgroupBarrier();

    // Online softmax: every thread of row r computes the same running max and sum.
    var tile_max = NEG;
    for (var e = 0u; e < B; e++) { tile_max = max(tile_max, sc[r][e]); }
    let m_new = max(m_run, tile_max);
    let correction = exp(m_run - m_new);
    pr[r][c] = select(0.0, exp(sv - m_new), valid);
    workgroupBarrier();
    var tile_sum = 0.0;
    for (var e = 0u; e < B; e++) { tile_sum += pr[r][e]; }
    l_run = l_run * correction + tile_sum;
    m_run = m_new;

    // acc[r][d] = acc·correction + Σ_e p[r][e] · v[k0 + e][d], V staged chunk by chunk.
    for (var d0 = 0u; d0 < hd; d0 += DC) {
      for (var m = 0u; m < B * DC / 256u; m++) {
        let row = (tid + 256u * m) / DC;
        let col = (tid + 256u * m) % DC;
        var vv = 0.0;
        // Rows past hi (the last tile overhangs the range) or of padding are zeros: P is 0 there, and
        // 0·v must stay 0 whatever those rows hold.
        if (d0 + col < hd && k0 + i32(row) <= hi && is_token(u32(k0) + row)) {
          vv = qkv[v_index(u32(k0) + row, h, d0 + col)];
        }
        ks[row][col] = vv;
      }
      workgroupBarrier();
      for (var m = 0u; m < DC / B; m++) {
        let col = c + B * m;
        if (d0 + col < hd) {
          let ci = (d0 + col) / B;
          var a = acc[ci] * correction;
          for (var e = 0u; e < B; e++) { a = fma(pr[r][e], ks[e][col], a); }
          acc[ci] = a;
        }
      }
      workgroupBarrier();
    }
  }

  if (t < T) {
    let D = params.n_head * hd;
    let inv = select(0.0, 1.0 / l_run, q_valid);
    for (var d0 = 0u; d0 < hd; d0 += B) {
      let d = d0 + c;
      if (d < hd) { out[t * D + h * hd + d] = acc[d0 / B] * inv; }
    }
    if (c == 0u) { lse[t * params.n_head + h] = select(0.0, m_run + log(l_run), q_valid); }
  }
}
