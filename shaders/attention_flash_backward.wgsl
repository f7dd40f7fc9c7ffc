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
// g·G + [n·G/N, (n+1)·G/N) (key_heads) and writes its (dK | dV) columns to the partials bound as
// d_qkv (dkv_index), which shaders/attention_reduce.wgsl adds in order into dqkv (as for the 'cpu'
// set).
//
// Workgroup: R = 16 rows × C = 4 threads (shaders/lib/attention_flash.wgsl); thread (r, c) owns the
// vec4 columns c, c + 4, … of its row.
// backward_dq: rows as in the forward (R / hpw query tokens × hpw heads sharing a K/V head); the
//   thread keeps q, dO and the dq accumulator of its columns privately, Δ_i is summed once at the
//   start. Per key tile (the hull of the query tile, key_hull): stage K and V rows (stage_keys);
//   partial q·k and dO·v over the thread's columns → part_s, part_p (partial_dots); then each thread
//   sums the C partials of every key in a fixed order and adds dS_ij·k_j to its dq columns.
// backward_dkv: rows are R key tokens; the thread keeps k, v, dk and dv columns privately. For each
//   query head of the workgroup (one without sharing), per query tile of BK tokens over the key tile's
//   hull (query_hull): stage Q and dO rows, each query's key_start and lse, and Δ_i's partials
//   (dO_i·O_i read from out); partial k·q and v·dO (partial_dots); then P, dS, and dk, dv.
// Rows that take no part (padding, past the hull or T) are staged as zeros and their pairs masked, so
// NaN in padding rows never reaches a sum; padding rows' gradients come out exactly 0.

// #include "lib/attention_backward_io"
// #include "lib/attention_mask"
// #include "lib/attention_flash"

var<workgroup> row_start: array<i32, BK>; // dkv: key_start of the staged query (T when it takes no part)
var<workgroup> row_lse: array<f32, BK>; // dkv: lse of the staged query
var<workgroup> delta_part: array<f32, BK * C>; // dkv: Δ of the staged queries [query][thread]

/**
 * Partial dot products over thread (r, c)'s columns of its private rows a and b with every staged
 * row j of tile_a and tile_b → part_s[r][j][c], part_p[r][j][c] (dQ: q·k and dO·v; dK/dV: k·q and
 * v·dO).
 */
fn partial_dots(a: ptr<function, Cols>, b: ptr<function, Cols>, r: u32, c: u32) {
  let NCD = D4 / C;
  let bk = staged_rows();
  for (var j = 0u; j < bk; j++) {
    var s4 = vec4<f32>(0.0);
    var p4 = vec4<f32>(0.0);
    for (var i = 0u; i < NCD; i++) {
      s4 = fma((*a)[i], tile_a[j * D4 + c + C * i], s4);
      p4 = fma((*b)[i], tile_b[j * D4 + c + C * i], p4);
    }
    part_s[r * PS + j * C + c] = sum4(s4);
    part_p[r * PS + j * C + c] = sum4(p4);
  }
}

@compute @workgroup_size(64)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let r = li / C;
  let c = li % C;
  let row = tile_row(wg, r);
  let hull = tile_hull(wg.x);
  let NCD = D4 / C;
  let bk = staged_rows();

  var q: Cols;
  var g: Cols; // dO columns
  var dq: Cols;
  var l = 0.0;
  var delta4 = vec4<f32>(0.0);
  if (row.valid) {
    let qi = q_index(row.t, row.h);
    let oi = o_index(row.t, row.h);
    for (var i = 0u; i < NCD; i++) {
      q[i] = qkv4(qi, c + C * i);
      g[i] = d_out4(oi, c + C * i);
      delta4 = fma(g[i], out4(oi, c + C * i), delta4);
    }
    l = lse[row.t * params.n_head + row.h];
  }
  // Δ of the row: the C partials summed in a fixed order.
  part_s[li] = sum4(delta4);
  workgroupBarrier();
  let delta = sum_part_s(r * C);
  workgroupBarrier();

  for (var k0 = hull.x; k0 <= hull.y; k0 += i32(BK)) {
    // Stage K and V rows k0 .. k0 + BK − 1 (zeros for keys that take no part).
    stage_keys(li, k0, hull.y, row.kv_head);
    workgroupBarrier();

    partial_dots(&q, &g, r, c);
    workgroupBarrier();

    for (var j = 0u; j < bk; j++) {
      let k = k0 + i32(j);
      let valid = sees_staged(row, j, k);
      let p = r * PS + j * C;
      let prob = select(0.0, exp(sum_part_s(p) * params.scale - l), valid);
      let ds = prob * (sum_part_p(p) - delta);
      for (var i = 0u; i < NCD; i++) { dq[i] = fma(vec4<f32>(ds), tile_a[j * D4 + c + C * i], dq[i]); }
    }
    workgroupBarrier(); // the next tile's staging overwrites the tiles and partials
  }

  if (row.in_range) {
    let qi = q_index(row.t, row.h);
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
  let bk = staged_rows();
  let hull = query_hull(k0, R); // workgroup-uniform
  var k_valid = false;
  if (k < T) { k_valid = mask[k].x != -1; }
  let heads = key_heads(wg.y); // workgroup-uniform

  var kr: Cols; // this key's K columns
  var vr: Cols; // and V columns
  var dk: Cols;
  var dv: Cols;
  if (k_valid) {
    let ki = k_index(k, heads.kv_head);
    let vi = v_index(k, heads.kv_head);
    for (var i = 0u; i < NCD; i++) {
      kr[i] = qkv4(ki, c + C * i);
      vr[i] = qkv4(vi, c + C * i);
    }
  }

  for (var h = heads.begin; h < heads.end; h++) {
    for (var i0 = hull.x; i0 <= hull.y; i0 += i32(BK)) {
      // Stage Q and dO rows i0 .. i0 + BK − 1 of head h (zeros for queries that take no part).
      for (var e = li; e < BK * D4; e += 64u) {
        let j = e / D4;
        let c4 = e % D4;
        let tq = i0 + i32(j);
        var qv = vec4<f32>(0.0);
        var gv = vec4<f32>(0.0);
        if (tq <= hull.y && mask[tq].x != -1) {
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
        if (tq <= hull.y) {
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
        if (tq <= hull.y && mask[tq].x != -1) {
          let oi = o_index(u32(tq), h);
          for (var i = 0u; i < NCD; i++) { d4 = fma(d_out4(oi, c2 + C * i), out4(oi, c2 + C * i), d4); }
        }
        delta_part[li] = sum4(d4);
      }
      workgroupBarrier();

      partial_dots(&kr, &vr, r, c);
      workgroupBarrier();

      for (var j = 0u; j < bk; j++) {
        let tq = i0 + i32(j);
        let valid = k_valid && in_window(i32(k), row_start[j], tq);
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
    let dst = dkv_index(k, heads.kv_head, heads.part);
    for (var i = 0u; i < NCD; i++) {
      let d = 4u * (c + C * i);
      for (var e = 0u; e < 4u; e++) {
        if (d + e < params.hd) {
          d_qkv[dst.x + d + e] = dk[i][e] * params.scale;
          d_qkv[dst.y + d + e] = dv[i][e];
        }
      }
    }
  }
}
