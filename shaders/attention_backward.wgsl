// Backward of shaders/attention.wgsl (same layouts and mask), flash-attention style: probabilities are
// recomputed from the saved logsumexp, P[i][j] = exp(scale·q_i·k_j − lse_i) on unmasked entries.
//   Δ_i   = dO_i · O_i                    (recomputed per query tile in both passes, no workspace)
//   dS_ij = P_ij · (dO_i · v_j − Δ_i)
//   dQ_i  = scale · Σ_j dS_ij k_j          entry point backward_dq  (one workgroup per query tile, head)
//   dK_j  = scale · Σ_i dS_ij q_i          entry point backward_dkv (one workgroup per key tile and
//   dV_j  = Σ_i P_ij dO_i                   K/V head; multi-query sums all query heads in the workgroup)
// Every element of dqkv is written exactly once (dq: Q columns; dkv: K and V columns), so dqkv needs no
// clearing and there are no atomics: the sums are deterministic. The two passes are independent.
// Multi-query with head_groups G > 1: workgroup (key tile, g) sums only heads [g·H/G, (g+1)·H/G) and
// writes its partial (dK | dV) rows to the buffer bound as d_qkv, laid out [G, T, 2·hd]; then
// shaders/attention_reduce.wgsl adds the G partials in order into dqkv (more workgroups, still
// deterministic).
// Thread (a, b) = (tid / 16, tid % 16); tiles of B = 16 rows; the head dimension is staged through
// workgroup memory in chunks of DC = 32 columns (any hd ≤ B·MAXC).
// As in the forward, rows of padding tokens and rows past a tile's range are staged as zeros where they
// would be multiplied by a zero P or dS, and masked entries go through select(): non-finite values in
// padding rows or in other functions' rows cannot leak in.

struct Params {
  T: u32,
  n_head: u32,
  hd: u32,
  multi_query: u32,
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

const B: u32 = 16u;
const DC: u32 = 32u; // head-dimension columns staged per chunk
const MAXC: u32 = 16u; // hd ≤ B·MAXC = 256

var<workgroup> t_q: array<array<f32, DC + 1>, B>; // [query][d] chunk of Q (+1: avoid bank conflicts)
var<workgroup> t_k: array<array<f32, DC + 1>, B>; // [key][d] chunk of K
var<workgroup> t_do: array<array<f32, DC + 1>, B>; // [query][d] chunk of dO
var<workgroup> t_v: array<array<f32, DC + 1>, B>; // [key][d] chunk of V
var<workgroup> t_p: array<array<f32, 17>, B>; // P (dkv: [key][query])
var<workgroup> t_ds: array<array<f32, 17>, B>; // dS (dq: [query][key]; dkv: [key][query]); Δ partials
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

fn o_index(t: u32, h: u32, d: u32) -> u32 {
  return t * params.n_head * params.hd + h * params.hd + d;
}

/** Stages columns [d0, d0 + DC) of Q, dO (rows q0..) and K, V (rows k0..) for head h (zero-padded). */
fn stage_chunk(tid: u32, q0: u32, k0: u32, h: u32, d0: u32) {
  for (var m = 0u; m < B * DC / 256u; m++) {
    let row = (tid + 256u * m) / DC;
    let col = (tid + 256u * m) % DC;
    let d = d0 + col;
    var qv = 0.0;
    var dov = 0.0;
    var kv = 0.0;
    var vv = 0.0;
    if (d < params.hd) {
      if (q0 + row < params.T) {
        qv = qkv[q_index(q0 + row, h, d)];
        dov = d_out[o_index(q0 + row, h, d)];
      }
      if (k0 + row < params.T) {
        kv = qkv[k_index(k0 + row, h, d)];
        vv = qkv[v_index(k0 + row, h, d)];
      }
    }
    t_q[row][col] = qv;
    t_do[row][col] = dov;
    t_k[row][col] = kv;
    t_v[row][col] = vv;
  }
}

/** Δ = dO · O of query row t, head h, summed over the 16 threads of row `a` through t_ds (uniform call). */
fn delta_of_row(t: u32, h: u32, a: u32, b: u32) -> f32 {
  var part = 0.0;
  if (t < params.T) {
    for (var d = b; d < params.hd; d += B) { part = fma(d_out[o_index(t, h, d)], out[o_index(t, h, d)], part); }
  }
  t_ds[a][b] = part;
  workgroupBarrier();
  var delta = 0.0;
  for (var e = 0u; e < B; e++) { delta += t_ds[a][e]; }
  workgroupBarrier();
  return delta;
}

@compute @workgroup_size(256)
fn backward_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let T = params.T;
  let hd = params.hd;
  let h = wg.y;
  let q0 = wg.x * B;
  let r = tid / B; // query row
  let c = tid % B; // key column (scores) / dimension lane (dQ)
  let t = q0 + r;

  var q_valid = false;
  var q_start = 0;
  var l = 0.0;
  if (t < T) {
    let m = mask[t];
    q_valid = m.x != -1;
    q_start = m.y;
    l = lse[t * params.n_head + h];
  }
  let delta = delta_of_row(t, h, r, c);

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

  var acc: array<f32, MAXC>;
  for (var k0 = lo; k0 <= hi; k0 += i32(B)) {
    var s = 0.0;
    var dp = 0.0;
    for (var d0 = 0u; d0 < hd; d0 += DC) {
      stage_chunk(tid, q0, u32(k0), h, d0);
      workgroupBarrier();
      let n = min(DC, hd - d0);
      for (var e = 0u; e < n; e++) {
        s = fma(t_q[r][e], t_k[c][e], s);
        dp = fma(t_do[r][e], t_v[c][e], dp);
      }
      workgroupBarrier();
    }
    let k = k0 + i32(c);
    var valid = q_valid && k >= q_start && k <= i32(t);
    if (valid) { valid = mask[k].x != -1; }
    let p = select(0.0, exp(s * params.scale - l), valid);
    t_ds[r][c] = select(0.0, p * (dp - delta), valid);

    // dQ[r][d] += Σ_e dS[r][e] · k[k0 + e][d]
    for (var d0 = 0u; d0 < hd; d0 += DC) {
      for (var m = 0u; m < B * DC / 256u; m++) {
        let row = (tid + 256u * m) / DC;
        let col = (tid + 256u * m) % DC;
        var kv = 0.0;
        // Rows past hi (the last tile overhangs the range) and padding rows stay zero (dS is 0 there).
        if (d0 + col < hd && k0 + i32(row) <= hi && is_token(u32(k0) + row)) {
          kv = qkv[k_index(u32(k0) + row, h, d0 + col)];
        }
        t_k[row][col] = kv;
      }
      workgroupBarrier();
      for (var m = 0u; m < DC / B; m++) {
        let col = c + B * m;
        if (d0 + col < hd) {
          let ci = (d0 + col) / B;
          var a = acc[ci];
          for (var e = 0u; e < B; e++) { a = fma(t_ds[r][e], t_k[e][col], a); }
          acc[ci] = a;
        }
      }
      workgroupBarrier();
    }
  }

  if (t < T) {
    for (var d0 = 0u; d0 < hd; d0 += B) {
      let d = d0 + c;
      if (d < hd) { d_qkv[q_index(t, h, d)] = acc[d0 / B] * params.scale; }
    }
  }
}

@compute @workgroup_size(256)
fn backward_dkv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let T = params.T;
  let hd = params.hd;
  let k0 = wg.x * B;
  let j = tid / B; // key row
  let i = tid % B; // query column (scores) / dimension lane (dK, dV)
  let k = k0 + j;

  var k_valid = false;
  if (k < T) { k_valid = mask[k].x != -1; }

  // Queries that may see this tile: [first non-padding key, max query_end − 1].
  if (tid == 0u) {
    var lo = i32(T);
    var hi = -1;
    for (var e = 0u; e < B; e++) {
      let kk = k0 + e;
      if (kk < T) {
        let m = mask[kk];
        if (m.x != -1) {
          lo = min(lo, i32(kk));
          hi = max(hi, m.z - 1);
        }
      }
    }
    range_lo = lo;
    range_hi = min(hi, i32(T) - 1);
  }
  let lo = workgroupUniformLoad(&range_lo);
  let hi = workgroupUniformLoad(&range_hi);

  // Multi-query: one K/V head, the workgroup sums over the query heads of its group wg.y (all heads
  // when head_groups = 1). Otherwise head wg.y only.
  var h_begin = wg.y;
  var h_end = wg.y + 1u;
  if (params.multi_query != 0u) {
    h_begin = wg.y * params.n_head / params.head_groups;
    h_end = (wg.y + 1u) * params.n_head / params.head_groups;
  }

  var dk: array<f32, MAXC>;
  var dv: array<f32, MAXC>;
  for (var h = h_begin; h < h_end; h++) {
    for (var q0i = lo; q0i <= hi; q0i += i32(B)) {
      let q0 = u32(q0i);
      let tq = q0 + i; // this thread's query in the score phase
      var q_valid = false;
      var q_start = 0;
      var l = 0.0;
      if (tq < T) {
        let m = mask[tq];
        q_valid = m.x != -1;
        q_start = m.y;
        l = lse[tq * params.n_head + h];
      }
      // Δ of query row q0 + j, then handed to column i through t_p.
      let delta_j = delta_of_row(q0 + j, h, j, i);
      if (i == 0u) { t_p[j][0] = delta_j; }
      workgroupBarrier();
      let delta = t_p[i][0];
      workgroupBarrier();

      var s = 0.0;
      var dp = 0.0;
      for (var d0 = 0u; d0 < hd; d0 += DC) {
        stage_chunk(tid, q0, k0, h, d0);
        workgroupBarrier();
        let n = min(DC, hd - d0);
        for (var e = 0u; e < n; e++) {
          s = fma(t_k[j][e], t_q[i][e], s);
          dp = fma(t_v[j][e], t_do[i][e], dp);
        }
        workgroupBarrier();
      }
      let valid = q_valid && k_valid && i32(k) >= q_start && k <= tq;
      let p = select(0.0, exp(s * params.scale - l), valid);
      t_p[j][i] = p;
      t_ds[j][i] = select(0.0, p * (dp - delta), valid);

      // dV[j][d] += Σ_e P[j][e] · dO[q0 + e][d];  dK[j][d] += Σ_e dS[j][e] · q[q0 + e][d]
      for (var d0 = 0u; d0 < hd; d0 += DC) {
        for (var m = 0u; m < B * DC / 256u; m++) {
          let row = (tid + 256u * m) / DC;
          let col = (tid + 256u * m) % DC;
          var qv = 0.0;
          var dov = 0.0;
          // Rows past hi and padding rows stay zero (P and dS are 0 there).
          if (d0 + col < hd && q0i + i32(row) <= hi && is_token(q0 + row)) {
            qv = qkv[q_index(q0 + row, h, d0 + col)];
            dov = d_out[o_index(q0 + row, h, d0 + col)];
          }
          t_q[row][col] = qv;
          t_do[row][col] = dov;
        }
        workgroupBarrier();
        for (var m = 0u; m < DC / B; m++) {
          let col = i + B * m;
          if (d0 + col < hd) {
            let ci = (d0 + col) / B;
            var a_k = dk[ci];
            var a_v = dv[ci];
            for (var e = 0u; e < B; e++) {
              a_k = fma(t_ds[j][e], t_q[e][col], a_k);
              a_v = fma(t_p[j][e], t_do[e][col], a_v);
            }
            dk[ci] = a_k;
            dv[ci] = a_v;
          }
        }
        workgroupBarrier();
      }
    }
    if (params.multi_query == 0u && k < T) {
      for (var d0 = 0u; d0 < hd; d0 += B) {
        let d = d0 + i;
        if (d < hd) {
          d_qkv[k_index(k, h, d)] = dk[d0 / B] * params.scale;
          d_qkv[v_index(k, h, d)] = dv[d0 / B];
        }
      }
    }
  }
  if (params.multi_query != 0u && k < T) {
    for (var d0 = 0u; d0 < hd; d0 += B) {
      let d = d0 + i;
      if (d < hd) {
        if (params.head_groups == 1u) {
          d_qkv[k_index(k, 0u, d)] = dk[d0 / B] * params.scale;
          d_qkv[v_index(k, 0u, d)] = dv[d0 / B];
        } else {
          let row = (wg.y * T + k) * 2u * hd;
          d_qkv[row + d] = dk[d0 / B] * params.scale;
          d_qkv[row + hd + d] = dv[d0 / B];
        }
      }
    }
  }
}
