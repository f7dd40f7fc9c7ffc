// Backward of shaders/attention.wgsl (same layouts and mask), flash-attention style: probabilities are
// recomputed from the saved logsumexp, P[i][j] = exp(scale·q_i·k_j − lse_i) on unmasked entries.
//   Δ_i   = dO_i · O_i
//   dS_ij = P_ij · (dO_i · v_j − Δ_i)
//   dQ_i  = scale · Σ_j dS_ij k_j          entry point backward_dq  (one invocation per query, head)
//   dK_j  = scale · Σ_i dS_ij q_i          entry point backward_dkv (one invocation per key and K/V
//   dV_j  = Σ_i P_ij dO_i                   head, summing the G query heads that share it)
// Every element of dqkv is written exactly once (dq: Q columns; dkv: K and V columns), so dqkv needs no
// clearing and there are no atomics: the sums are deterministic. The two passes are independent.
// Grouped layout with head_groups N > 1: workgroup (key tile, K/V head g, part n) sums only heads
// g·G + [n·G/N, (n+1)·G/N) and writes its partial rows to the buffer bound as d_qkv, laid out
// [N, T, 2·kv_heads·hd] (the K and V columns of dqkv); then shaders/attention_reduce.wgsl adds the N
// partials in order into dqkv (more workgroups, still deterministic).
// As in the forward: workgroups of TQ = 8 rows (× HPW heads in backward_dq), each invocation keeps its
// own rows in private memory (as vec4s) and loops over the tile's range of the other side (keys for
// dQ, queries for dK/dV), which is workgroup-uniform, reading those rows straight from the storage
// buffers. No workgroup memory, no barriers. Padding rows are skipped by the whole workgroup (even NaN
// there never leaks in); other masked pairs of the range enter with P = dS = 0.

struct Params {
  T: u32,
  n_head: u32,
  hd: u32,
  kv_heads: u32, // 0: the interleaved multi-head layout
  scale: f32,
  head_groups: u32,
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read> out: array<f32>;
@group(0) @binding(3) var<storage, read> d_out: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_qkv: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

override HPW: u32 = 1u; // backward_dq: query heads per workgroup (1 without shared K/V)
const TQ: u32 = 8u; // rows per workgroup
const MAXD4: u32 = 64u; // largest head dimension / 4 (rows are held as vec4s)

/** K/V heads (n_head for the interleaved layout). */
fn n_kv() -> u32 {
  return select(params.kv_heads, params.n_head, params.kv_heads == 0u);
}

/** Query heads per K/V head (G). */
fn group_size() -> u32 {
  return params.n_head / n_kv();
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

fn o_index(t: u32, h: u32) -> u32 {
  return (t * params.n_head + h) * params.hd;
}

/** Floats d..d+3 of the qkv row at `base`, zeros past the head dimension (never another row's). */
fn qkv4(base: u32, d: u32) -> vec4<f32> {
  return vec4<f32>(
    select(0.0, qkv[base + d], d < params.hd),
    select(0.0, qkv[base + d + 1u], d + 1u < params.hd),
    select(0.0, qkv[base + d + 2u], d + 2u < params.hd),
    select(0.0, qkv[base + d + 3u], d + 3u < params.hd),
  );
}

/** The same for a row of out. */
fn out4(base: u32, d: u32) -> vec4<f32> {
  return vec4<f32>(
    select(0.0, out[base + d], d < params.hd),
    select(0.0, out[base + d + 1u], d + 1u < params.hd),
    select(0.0, out[base + d + 2u], d + 2u < params.hd),
    select(0.0, out[base + d + 3u], d + 3u < params.hd),
  );
}

/** The same for a row of d_out. */
fn d_out4(base: u32, d: u32) -> vec4<f32> {
  return vec4<f32>(
    select(0.0, d_out[base + d], d < params.hd),
    select(0.0, d_out[base + d + 1u], d + 1u < params.hd),
    select(0.0, d_out[base + d + 2u], d + 2u < params.hd),
    select(0.0, d_out[base + d + 3u], d + 3u < params.hd),
  );
}

fn sum4(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(TQ, HPW)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let T = params.T;
  let q0 = wg.x * TQ;
  let t = q0 + lid.x;
  // wg.y = (K/V head, chunk of HPW heads of its group), as in the forward: K/V indices stay
  // workgroup-uniform.
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
  var g: array<vec4<f32>, MAXD4>; // dO row
  var dq: array<vec4<f32>, MAXD4>;
  var l = 0.0;
  var delta4 = vec4<f32>(0.0);
  if (q_valid) {
    let qi = q_index(t, h);
    let oi = o_index(t, h);
    for (var c = 0u; c < HD4; c++) {
      q[c] = qkv4(qi, 4u * c);
      g[c] = d_out4(oi, 4u * c);
      delta4 = fma(g[c], out4(oi, 4u * c), delta4);
    }
    l = lse[t * params.n_head + h];
  }
  let delta = sum4(delta4);

  for (var k = lo; k <= hi; k++) {
    // Padding rows are skipped by the whole workgroup; other masked keys get dS = 0 (their rows are
    // real tokens of the tile's range, finite, so 0·k stays 0).
    if (mask[k].x == -1) { continue; }
    let ki = k_index(u32(k), kv_head);
    let vi = v_index(u32(k), kv_head);
    var s4 = vec4<f32>(0.0);
    var dp4 = vec4<f32>(0.0);
    for (var c = 0u; c < HD4; c++) {
      s4 = fma(q[c], qkv4(ki, 4u * c), s4);
      dp4 = fma(g[c], qkv4(vi, 4u * c), dp4);
    }
    let valid = q_valid && k >= q_start && k <= i32(t);
    let ds = select(0.0, exp(sum4(s4) * params.scale - l) * (sum4(dp4) - delta), valid);
    for (var c = 0u; c < HD4; c++) { dq[c] = fma(vec4<f32>(ds), qkv4(ki, 4u * c), dq[c]); }
  }

  if (in_range) {
    let qi = q_index(t, h);
    for (var d = 0u; d < params.hd; d++) { d_qkv[qi + d] = dq[d / 4u][d % 4u] * params.scale; }
  }
}

@compute @workgroup_size(TQ)
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let T = params.T;
  let k0 = wg.x * TQ;
  let k = k0 + lid;

  // Queries that may see this tile: [first non-padding key, max query_end − 1] (workgroup-uniform).
  var lo = i32(T);
  var hi = -1;
  for (var e = 0u; e < TQ; e++) {
    let kk = k0 + e;
    if (kk < T) {
      let m = mask[kk];
      if (m.x != -1) {
        lo = min(lo, i32(kk));
        hi = max(hi, m.z - 1);
      }
    }
  }
  hi = min(hi, i32(T) - 1);

  var k_valid = false;
  if (k < T) { k_valid = mask[k].x != -1; }

  // wg.y = (K/V head, head group hg): the invocation sums the query heads of part hg of the
  // K/V head's group (the whole group when head_groups = 1; the interleaved layout: G = 1, its head).
  let G = group_size();
  let kv_head = wg.y / params.head_groups;
  let hg = wg.y % params.head_groups;
  let h_begin = kv_head * G + hg * G / params.head_groups;
  let h_end = kv_head * G + (hg + 1u) * G / params.head_groups;

  let HD4 = (params.hd + 3u) / 4u; // vec4s per row
  var kr: array<vec4<f32>, MAXD4>; // this key's K row
  var vr: array<vec4<f32>, MAXD4>; // and V row
  var dk: array<vec4<f32>, MAXD4>;
  var dv: array<vec4<f32>, MAXD4>;
  if (k_valid) {
    let ki = k_index(k, kv_head);
    let vi = v_index(k, kv_head);
    for (var c = 0u; c < HD4; c++) {
      kr[c] = qkv4(ki, 4u * c);
      vr[c] = qkv4(vi, 4u * c);
    }
  }
  for (var h = h_begin; h < h_end; h++) {
    for (var i = lo; i <= hi; i++) {
      // Padding queries are skipped by the whole workgroup; other masked pairs get P = dS = 0 (the
      // query rows are real tokens of the tile's range, finite, so 0·q and 0·dO stay 0).
      let m = mask[i];
      if (m.x == -1) { continue; }
      let tq = u32(i);
      let qi = q_index(tq, h);
      let oi = o_index(tq, h);
      var s4 = vec4<f32>(0.0);
      var dp4 = vec4<f32>(0.0);
      var delta4 = vec4<f32>(0.0);
      for (var c = 0u; c < HD4; c++) {
        let g = d_out4(oi, 4u * c);
        s4 = fma(kr[c], qkv4(qi, 4u * c), s4);
        dp4 = fma(vr[c], g, dp4);
        delta4 = fma(g, out4(oi, 4u * c), delta4);
      }
      let valid = k_valid && i32(k) >= m.y && i32(k) <= i;
      let p = select(0.0, exp(sum4(s4) * params.scale - lse[tq * params.n_head + h]), valid);
      let ds = p * (sum4(dp4) - sum4(delta4));
      for (var c = 0u; c < HD4; c++) {
        dk[c] = fma(vec4<f32>(ds), qkv4(qi, 4u * c), dk[c]);
        dv[c] = fma(vec4<f32>(p), d_out4(oi, 4u * c), dv[c]);
      }
    }
  }
  if (k < T) {
    var ki = k_index(k, kv_head);
    var vi = v_index(k, kv_head);
    if (params.head_groups != 1u) {
      // Partial row (hg, k): [dK | dV] of every K/V head, as in dqkv's K and V columns.
      ki = (hg * T + k) * 2u * params.kv_heads * params.hd + kv_head * params.hd;
      vi = ki + params.kv_heads * params.hd;
    }
    for (var d = 0u; d < params.hd; d++) {
      d_qkv[ki + d] = dk[d / 4u][d % 4u] * params.scale;
      d_qkv[vi + d] = dv[d / 4u][d % 4u];
    }
  }
}
