// What shaders/attention_flash.wgsl and attention_flash_backward.wgsl share (`// #include
// "lib/attention_flash"`): the qkv / out layouts of shaders/attention.wgsl, the workgroup shape, the
// tile overrides, the heads of a query-side workgroup and the hull of a query tile's keys. The
// including shader declares `params` (T, n_head, hd, kv_heads, scale, head_groups, hpw), `qkv` and
// `mask` (see its header).
//
// A workgroup is R = 16 rows × C = 4 threads (64 invocations). Row r is one (query token, head) of
// the query side (forward, dQ) or one key token (dK/dV); thread (r, c) owns the vec4 columns
// c, c + C, c + 2C, … < D4 of that row (interleaved, so the C threads of a row read neighbouring
// vec4s of a staged row), in private memory. The other side is staged in tiles of BK rows of D4 vec4s
// in workgroup memory, zero-filled past hd and on rows that take no part (padding, past the hull),
// so neither NaN nor another row's values enter the sums.

override D4: u32 = 16u; // vec4s per staged row: ≥ ceil(hd / 4), a multiple of C (8, 16, 32 or 64)
// Rows per staged tile (16, 8 or 4: what the adapter's workgroup memory allows). The loops over a
// tile's rows run to `bk = min(BK, params.T + BK)`, equal to BK but not a compile-time constant, so
// that CPU drivers (llvmpipe) do not unroll them: fully unrolled, a pipeline took minutes to compile
// there. The loops over a thread's columns (D4 / C) stay constant so GPUs keep them in registers.
override BK: u32 = 16u;
// Row stride of the partial-score arrays [row][staged row][thread]: BK·C floats padded by C, so the
// 32 threads of a warp (rows r .. r + 7) hit 32 different banks (4r + c + 4j) instead of one per row.
override PS: u32 = (BK + 1u) * C;
const R: u32 = 16u; // rows per workgroup
const C: u32 = 4u; // threads per row
const NC: u32 = 16u; // private vec4s per thread and row (D4 / C ≤ 16: hd ≤ 256)
const NEG: f32 = -3.0e38; // finite "minus infinity": WGSL does not guarantee infinities

/** K/V heads (n_head for the interleaved layout, kv_heads = 0). */
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

/** Floats 4·c4 .. 4·c4 + 3 of the qkv row at `base`, zeros past the head dimension. */
fn qkv4(base: u32, c4: u32) -> vec4<f32> {
  let d = 4u * c4;
  return vec4<f32>(
    select(0.0, qkv[base + d], d < params.hd),
    select(0.0, qkv[base + d + 1u], d + 1u < params.hd),
    select(0.0, qkv[base + d + 2u], d + 2u < params.hd),
    select(0.0, qkv[base + d + 3u], d + 3u < params.hd),
  );
}

/** Query tokens of the workgroup's query tile: R / hpw tokens (× hpw heads). */
fn tile_tokens() -> u32 {
  return R / params.hpw;
}

/**
 * Heads of a query-side workgroup (forward, dQ): wg_y = (K/V head, chunk of hpw heads of its group),
 * so that the hpw heads share every staged K/V tile. Row r's head: (K/V head, head j within the
 * group); j ≥ G (the last chunk's spare rows) takes no part.
 */
fn query_heads(wg_y: u32, r: u32) -> vec2<u32> {
  let chunks = (group_size() + params.hpw - 1u) / params.hpw;
  return vec2<u32>(wg_y / chunks, (wg_y % chunks) * params.hpw + r % params.hpw);
}

/**
 * The keys a query tile [q0, q0 + n) visits: [min key_start, last non-padding query] over its
 * non-padding queries (lo > hi: none). The union of their ranges [key_start, t] is this interval
 * (each ends at its own t, and the tokens are consecutive), so no key tile outside it holds an
 * allowed key and none inside it is wholly masked for every row but through padding keys.
 */
fn key_hull(q0: u32, n: u32) -> vec2<i32> {
  var lo = i32(params.T);
  var hi = -1;
  for (var i = 0u; i < n; i++) {
    let t = q0 + i;
    if (t < params.T) {
      let m = mask[t];
      if (m.x != -1) {
        lo = min(lo, m.y);
        hi = i32(t);
      }
    }
  }
  return vec2<i32>(lo, hi);
}
