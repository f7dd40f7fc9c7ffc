// Backward of shaders/attention_flash.wgsl, GPU-class variant (the 'gpu' kernel set): FlashAttention-2
// style, the other side staged in workgroup memory. Same bindings, layouts, mask, head groups and
// results as shaders/attention_backward.wgsl (the 'cpu' set). No probability matrix is stored: scores
// are recomputed from Q, K and the forward's logsumexp,
//   P_ij  = exp(scale · q_i·k_j − lse_i) on unmasked pairs, 0 elsewhere
//   Δ_i   = dO_i · O_i
//   dS_ij = P_ij · (dO_i·v_j − Δ_i)
//   dQ_i  = scale · Σ_j dS_ij k_j      backward_dq: a workgroup per query tile, looping over key tiles
//   dK_j  = scale · Σ_i dS_ij q_i      backward_dkv: a workgroup per key tile and K/V head, looping
//   dV_j  = Σ_i P_ij dO_i              over query tiles (and over the G query heads sharing it)
// Every element of dqkv is written exactly once (dq: the Q columns; dkv: K and V), so dqkv needs no
// clearing; there are no atomics, every sum runs in a fixed order: the results are deterministic.
// Grouped layout with head_groups N > 1: workgroup (key tile, K/V head g, part n) sums heads
// g·G + [n·G/N, (n+1)·G/N) and writes its (dK | dV) columns to the partials bound as d_qkv,
// [N, T, 2·kv_heads·hd], which shaders/attention_reduce.wgsl adds in order into dqkv (as for the
// 'cpu' set).
//
// Workgroup: R = 16 rows × C = 4 threads (shaders/lib/attention_flash.wgsl); thread (r, c) owns the
// vec4 columns c, c + 4, … of its row.
// backward_dq: rows as in the forward (R / hpw query tokens × hpw heads sharing a K/V head); the
//   thread keeps q, dO and the dq accumulator of its columns privately, Δ_i is summed once at the
//   start. Per key tile (the hull of the query tile, key_hull): stage K and V rows; partial q·k and
//   dO·v over the thread's columns → part_s, part_p; then each thread sums the C partials of every key
//   in a fixed order and adds dS_ij·k_j to its dq columns.
// backward_dkv: rows are R key tokens; the thread keeps k, v, dk and dv columns privately. For each
//   query head of the workgroup (one without sharing), per query tile of BK tokens over the key tile's
//   hull [first non-padding key, max query_end − 1]: stage Q and dO rows, each query's key_start and
//   lse, and Δ_i's partials (dO_i·O_i read from out); partial k·q and v·dO; then P, dS, and dk, dv.
// Rows that take no part (padding, past the hull or T) are staged as zeros and their pairs masked, so
// NaN in padding rows never reaches a sum; padding rows' gradients come out exactly 0.

struct Params {
  T: u32,
  n_head: u32,
  hd: u32,
  kv_heads: u32, // 0: the interleaved multi-head layout
  scale: f32,
  head_groups: u32,
  hpw: u32, // backward_dq: query heads per workgroup (1 without shared K/V)
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read> out: array<f32>;
@group(0) @binding(3) var<storage, read> d_out: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_qkv: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

// #include "lib/attention_flash"

var<workgroup> tile_a: array<vec4<f32>, BK * D4>; // dq: K rows; dkv: Q rows
var<workgroup> tile_b: array<vec4<f32>, BK * D4>; // dq: V rows; dkv: dO rows
var<workgroup> part_s: array<f32, R * PS>; // partial scores [row][staged row][thread]
var<workgroup> part_p: array<f32, R * PS>; // partial dO·v [row][staged row][thread]
var<workgroup> row_ok: array<u32, BK>; // dq: the staged key is a real token of the hull
var<workgroup> row_start: array<i32, BK>; // dkv: key_start of the staged query (T when it takes no part)
var<workgroup> row_lse: array<f32, BK>; // dkv: lse of the staged query
var<workgroup> delta_part: array<f32, BK * C>; // dkv: Δ of the staged queries [query][thread]

/** Floats 4·c4 .. 4·c4 + 3 of the out row at `base`, zeros past the head dimension. */
fn out4(base: u32, c4: u32) -> vec4<f32> {
  let d = 4u * c4;
  return vec4<f32>(
    select(0.0, out[base + d], d < params.hd),
    select(0.0, out[base + d + 1u], d + 1u < params.hd),
    select(0.0, out[base + d + 2u], d + 2u < params.hd),
    select(0.0, out[base + d + 3u], d + 3u < params.hd),
  );
}

/** The same for a row of d_out. */
fn d_out4(base: u32, c4: u32) -> vec4<f32> {
  let d = 4u * c4;
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

/** The C partials at `p` summed in a fixed order. */
fn sum_part_s(p: u32) -> f32 {
  return (part_s[p] + part_s[p + 1u]) + (part_s[p + 2u] + part_s[p + 3u]);
}

fn sum_part_p(p: u32) -> f32 {
  return (part_p[p] + part_p[p + 1u]) + (part_p[p + 2u] + part_p[p + 3u]);
}

@compute @workgroup_size(64)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
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
  let NCD = D4 / C;
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
  var g: array<vec4<f32>, NC>; // dO columns
  var dq: array<vec4<f32>, NC>;
  var l = 0.0;
  var delta4 = vec4<f32>(0.0);
  if (q_valid) {
    let qi = q_index(t, h);
    let oi = o_index(t, h);
    for (var i = 0u; i < NCD; i++) {
      q[i] = qkv4(qi, c + C * i);
      g[i] = d_out4(oi, c + C * i);
      delta4 = fma(g[i], out4(oi, c + C * i), delta4);
    }
    l = lse[t * params.n_head + h];
  }
  // Δ of the row: the C partials summed in a fixed order.
  part_s[li] = sum4(delta4);
  workgroupBarrier();
  let delta = sum_part_s(r * C);
  workgroupBarrier();

  for (var k0 = hull.x; k0 <= hull.y; k0 += i32(BK)) {
    // Stage K and V rows k0 .. k0 + BK − 1 (zeros for keys that take no part).
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
      tile_a[e] = kv;
      tile_b[e] = vv;
    }
    if (li < BK) {
      let k = k0 + i32(li);
      row_ok[li] = select(0u, 1u, k <= hull.y && mask[k].x != -1);
    }
    workgroupBarrier();

    for (var j = 0u; j < bk; j++) {
      var s4 = vec4<f32>(0.0);
      var p4 = vec4<f32>(0.0);
      for (var i = 0u; i < NCD; i++) {
        s4 = fma(q[i], tile_a[j * D4 + c + C * i], s4);
        p4 = fma(g[i], tile_b[j * D4 + c + C * i], p4);
      }
      part_s[r * PS + j * C + c] = sum4(s4);
      part_p[r * PS + j * C + c] = sum4(p4);
    }
    workgroupBarrier();

    for (var j = 0u; j < bk; j++) {
      let k = k0 + i32(j);
      let valid = q_valid && row_ok[j] != 0u && k >= q_start && k <= i32(t);
      let p = r * PS + j * C;
      let prob = select(0.0, exp(sum_part_s(p) * params.scale - l), valid);
      let ds = prob * (sum_part_p(p) - delta);
      for (var i = 0u; i < NCD; i++) { dq[i] = fma(vec4<f32>(ds), tile_a[j * D4 + c + C * i], dq[i]); }
    }
    workgroupBarrier(); // the next tile's staging overwrites the tiles and partials
  }

  if (in_range) {
    let qi = q_index(t, h);
    for (var i = 0u; i < NCD; i++) {
      let d = 4u * (c + C * i);
      for (var e = 0u; e < 4u; e++) {
        if (d + e < params.hd) { d_qkv[qi + d + e] = dq[i][e] * params.scale; }
      }
    }
  }
}

@compute @workgroup_size(64)
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let T = params.T;
  let k0 = wg.x * R;
  let r = li / C;
  let c = li % C;
  let k = k0 + r;
  let NCD = D4 / C;
  let bk = min(BK, params.T + BK); // = BK (see BK in lib/attention_flash.wgsl)

  // Queries that may see this key tile: [first non-padding key, max query_end − 1] (uniform).
  var lo = i32(T);
  var hi = -1;
  for (var e = 0u; e < R; e++) {
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

  // wg.y = (K/V head, head group hg): the workgroup sums the query heads of part hg of the K/V
  // head's group (the whole group when head_groups = 1; the interleaved layout: G = 1, its head).
  let G = group_size();
  let kv_head = wg.y / params.head_groups;
  let hg = wg.y % params.head_groups;
  let h_begin = kv_head * G + hg * G / params.head_groups;
  let h_end = kv_head * G + (hg + 1u) * G / params.head_groups;

  var kr: array<vec4<f32>, NC>; // this key's K columns
  var vr: array<vec4<f32>, NC>; // and V columns
  var dk: array<vec4<f32>, NC>;
  var dv: array<vec4<f32>, NC>;
  if (k_valid) {
    let ki = k_index(k, kv_head);
    let vi = v_index(k, kv_head);
    for (var i = 0u; i < NCD; i++) {
      kr[i] = qkv4(ki, c + C * i);
      vr[i] = qkv4(vi, c + C * i);
    }
  }

  for (var h = h_begin; h < h_end; h++) {
    for (var i0 = lo; i0 <= hi; i0 += i32(BK)) {
      // Stage Q and dO rows i0 .. i0 + BK − 1 of head h (zeros for queries that take no part).
      for (var e = li; e < BK * D4; e += 64u) {
        let j = e / D4;
        let c4 = e % D4;
        let tq = i0 + i32(j);
        var qv = vec4<f32>(0.0);
        var gv = vec4<f32>(0.0);
        if (tq <= hi && mask[tq].x != -1) {
          qv = qkv4(q_index(u32(tq), h), c4);
          gv = d_out4(o_index(u32(tq), h), c4);
        }
        tile_a[e] = qv;
        tile_b[e] = gv;
      }
      if (li < BK) {
        let tq = i0 + i32(li);
        var start = i32(T); // no key satisfies key_start ≤ k < T
        var l = 0.0;
        if (tq <= hi) {
          let m = mask[tq];
          if (m.x != -1) {
            start = m.y;
            l = lse[u32(tq) * params.n_head + h];
          }
        }
        row_start[li] = start;
        row_lse[li] = l;
      }
      if (li < BK * C) {
        // Δ partials: thread (query j, column group c2) dots dO and O over columns c2, c2 + C, …
        let j = li / C;
        let c2 = li % C;
        let tq = i0 + i32(j);
        var d4 = vec4<f32>(0.0);
        if (tq <= hi && mask[tq].x != -1) {
          let oi = o_index(u32(tq), h);
          for (var i = 0u; i < NCD; i++) { d4 = fma(d_out4(oi, c2 + C * i), out4(oi, c2 + C * i), d4); }
        }
        delta_part[li] = sum4(d4);
      }
      workgroupBarrier();

      for (var j = 0u; j < bk; j++) {
        var s4 = vec4<f32>(0.0);
        var p4 = vec4<f32>(0.0);
        for (var i = 0u; i < NCD; i++) {
          s4 = fma(kr[i], tile_a[j * D4 + c + C * i], s4);
          p4 = fma(vr[i], tile_b[j * D4 + c + C * i], p4);
        }
        part_s[r * PS + j * C + c] = sum4(s4);
        part_p[r * PS + j * C + c] = sum4(p4);
      }
      workgroupBarrier();

      for (var j = 0u; j < bk; j++) {
        let tq = i0 + i32(j);
        let valid = k_valid && i32(k) >= row_start[j] && i32(k) <= tq;
        let p = r * PS + j * C;
        let prob = select(0.0, exp(sum_part_s(p) * params.scale - row_lse[j]), valid);
        let dl = j * C;
        let delta = (delta_part[dl] + delta_part[dl + 1u]) + (delta_part[dl + 2u] + delta_part[dl + 3u]);
        let ds = prob * (sum_part_p(p) - delta);
        for (var i = 0u; i < NCD; i++) {
          dk[i] = fma(vec4<f32>(ds), tile_a[j * D4 + c + C * i], dk[i]);
          dv[i] = fma(vec4<f32>(prob), tile_b[j * D4 + c + C * i], dv[i]);
        }
      }
      workgroupBarrier(); // the next tile's staging overwrites the tiles and partials
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
    for (var i = 0u; i < NCD; i++) {
      let d = 4u * (c + C * i);
      for (var e = 0u; e < 4u; e++) {
        if (d + e < params.hd) {
          d_qkv[ki + d + e] = dk[i][e] * params.scale;
          d_qkv[vi + d + e] = dv[i][e];
        }
      }
    }
  }
}
