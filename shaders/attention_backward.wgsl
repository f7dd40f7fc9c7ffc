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
// g·G + [n·G/N, (n+1)·G/N) (key_heads) and writes its partial rows to the buffer bound as d_qkv
// (dkv_index); then shaders/attention_reduce.wgsl adds the N partials in order into dqkv (more
// workgroups, still deterministic).
// As in the forward: workgroups of TQ = 8 rows (× HPW heads in backward_dq), each invocation keeps its
// own rows in private memory and loops over the tile's hull of the other side (keys for dQ, queries
// for dK/dV), reading those rows straight from the storage buffers (lib/attention_rows). Padding rows
// are skipped by the whole workgroup (even NaN there never leaks in); other masked pairs of the range
// enter with P = dS = 0.

// #include "lib/attention_backward_io"
// #include "lib/attention_mask"
// #include "lib/attention_rows"

@compute @workgroup_size(TQ, HPW)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = tile_row(wg, lid);
  let hull = tile_hull(wg.x);
  let HD4 = hd4();
  var q: Row;
  var g: Row; // dO row
  var dq: Row;
  var l = 0.0;
  var delta4 = vec4<f32>(0.0);
  if (row.valid) {
    let qi = q_index(row.t, row.h);
    let oi = o_index(row.t, row.h);
    for (var c = 0u; c < HD4; c++) {
      q[c] = qkv4(qi, c);
      g[c] = d_out4(oi, c);
      delta4 = fma(g[c], out4(oi, c), delta4);
    }
    l = lse[row.t * params.n_head + row.h];
  }
  let delta = sum4(delta4);

  for (var k = hull.x; k <= hull.y; k++) {
    // Padding rows are skipped by the whole workgroup; other masked keys get dS = 0 (their rows are
    // real tokens of the tile's range, finite, so 0·k stays 0).
    if (mask[k].x == -1) { continue; }
    let ki = k_index(u32(k), row.kv_head);
    let vi = v_index(u32(k), row.kv_head);
    var s4 = vec4<f32>(0.0);
    var dp4 = vec4<f32>(0.0);
    for (var c = 0u; c < HD4; c++) {
      s4 = fma(q[c], qkv4(ki, c), s4);
      dp4 = fma(g[c], qkv4(vi, c), dp4);
    }
    let ds = select(0.0, exp(sum4(s4) * params.scale - l) * (sum4(dp4) - delta), sees(row, k));
    for (var c = 0u; c < HD4; c++) { dq[c] = fma(vec4<f32>(ds), qkv4(ki, c), dq[c]); }
  }

  if (row.in_range) {
    let qi = q_index(row.t, row.h);
    for (var d = 0u; d < params.hd; d++) { d_qkv[qi + d] = dq[d / 4u][d % 4u] * params.scale; }
  }
}

@compute @workgroup_size(TQ)
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k0 = wg.x * TQ;
  let k = k0 + lid;
  let hull = query_hull(k0, TQ);
  var k_valid = false;
  if (k < params.T) { k_valid = mask[k].x != -1; }
  let heads = key_heads(wg.y);

  let HD4 = hd4();
  var kr: Row; // this key's K row
  var vr: Row; // and V row
  var dk: Row;
  var dv: Row;
  if (k_valid) {
    let ki = k_index(k, heads.kv_head);
    let vi = v_index(k, heads.kv_head);
    for (var c = 0u; c < HD4; c++) {
      kr[c] = qkv4(ki, c);
      vr[c] = qkv4(vi, c);
    }
  }
  for (var h = heads.begin; h < heads.end; h++) {
    for (var i = hull.x; i <= hull.y; i++) {
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
        let g = d_out4(oi, c);
        s4 = fma(kr[c], qkv4(qi, c), s4);
        dp4 = fma(vr[c], g, dp4);
        delta4 = fma(g, out4(oi, c), delta4);
      }
      let valid = k_valid && in_window(i32(k), m.y, i);
      let p = select(0.0, exp(sum4(s4) * params.scale - lse[tq * params.n_head + h]), valid);
      let ds = p * (sum4(dp4) - sum4(delta4));
      for (var c = 0u; c < HD4; c++) {
        dk[c] = fma(vec4<f32>(ds), qkv4(qi, c), dk[c]);
        dv[c] = fma(vec4<f32>(p), d_out4(oi, c), dv[c]);
      }
    }
  }
  if (k < params.T) {
    let dst = dkv_index(k, heads.kv_head, heads.part);
    for (var d = 0u; d < params.hd; d++) {
      d_qkv[dst.x + d] = dk[d / 4u][d % 4u] * params.scale;
      d_qkv[dst.y + d] = dv[d / 4u][d % 4u];
    }
  }
}
