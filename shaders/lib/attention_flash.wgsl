// What shaders/attention_flash.wgsl and attention_flash_backward.wgsl (the 'gpu' kernel set) share
// (`// #include "lib/attention_flash"`; it includes lib/attention_io and lib/attention_mask): the
// workgroup shape, the tile overrides, a query-side workgroup's rows, the staged tiles and the staging
// of a key tile.
//
// A workgroup is R = 16 rows × C = 4 threads (64 invocations). Row r is one (query token, head) of
// the query side (forward, dQ: R / hpw tokens × hpw heads, query_row) or one key token (dK/dV);
// thread (r, c) owns the vec4 columns c, c + C, c + 2C, … < D4 of that row (interleaved, so the C
// threads of a row read neighbouring vec4s of a staged row), in private memory. The other side is
// staged in tiles of BK rows of D4 vec4s in workgroup memory, zero-filled past hd and on rows that
// take no part (padding, past the hull), so neither NaN nor another row's values enter the sums.

// #include "lib/attention_io"
// #include "lib/attention_mask"

override D4: u32 = 16u; // vec4s per staged row: ≥ ceil(hd / 4), a multiple of C (8, 16, 32 or 64)
// Rows per staged tile (16, 8 or 4: what the adapter's workgroup memory allows). The loops over a
// tile's rows run to `staged_rows()`, equal to BK but not a compile-time constant, so that CPU drivers
// (llvmpipe) do not unroll them: fully unrolled, a pipeline took minutes to compile there. The loops
// over a thread's columns (D4 / C) stay constant so GPUs keep them in registers.
override BK: u32 = 16u;
// Row stride of the partial-score arrays [row][staged row][thread]: BK·C floats padded by C, so the
// 32 threads of a warp (rows r .. r + 7) hit 32 different banks (4r + c + 4j) instead of one per row.
override PS: u32 = (BK + 1u) * C;
const R: u32 = 16u; // rows per workgroup
const C: u32 = 4u; // threads per row
const NC: u32 = 16u; // private vec4s per thread and row (D4 / C ≤ 16: hd ≤ 256)

alias Cols = array<vec4<f32>, NC>; // a thread's columns of its row

var<workgroup> tile_a: array<vec4<f32>, BK * D4>; // forward, dQ: K rows; dK/dV: Q rows
var<workgroup> tile_b: array<vec4<f32>, BK * D4>; // forward, dQ: V rows; dK/dV: dO rows
var<workgroup> part_s: array<f32, R * PS>; // partial scores [row][staged row][thread], row stride PS
var<workgroup> part_p: array<f32, R * PS>; // backward: partial dO·v (dQ), v·dO (dK/dV), as part_s
var<workgroup> row_ok: array<u32, BK>; // forward, dQ: 1 when the staged key is a real token of the hull

/** BK, hidden from the compiler (see BK). */
fn staged_rows() -> u32 {
  return min(BK, params.T + BK);
}

/** Query tokens of a query-side workgroup's tile: R / hpw tokens (× hpw heads). */
fn tile_tokens() -> u32 {
  return R / params.hpw;
}

/** Row r of a query-side workgroup (forward, dQ): token r / hpw of its tile, head r % hpw. */
fn tile_row(wg: vec3<u32>, r: u32) -> QueryRow {
  let hpw = params.hpw;
  return query_row(wg.x * tile_tokens() + r / hpw, wg.y, hpw, r % hpw);
}

/** The keys the tile of query-side workgroup wg_x visits (key_hull): workgroup-uniform. */
fn tile_hull(wg_x: u32) -> vec2<i32> {
  return key_hull(wg_x * tile_tokens(), tile_tokens());
}

/**
 * Stages K and V rows k0 .. k0 + BK − 1 of K/V head kv_head into tile_a and tile_b (thread li of the
 * 64), zeros for keys that take no part (padding, past the hull's last key hi), and their row_ok.
 */
fn stage_keys(li: u32, k0: i32, hi: i32, kv_head: u32) {
  for (var e = li; e < BK * D4; e += 64u) {
    let j = e / D4;
    let c4 = e % D4;
    let k = k0 + i32(j);
    var kv = vec4<f32>(0.0);
    var vv = vec4<f32>(0.0);
    if (k <= hi && mask[k].x != -1) {
      kv = qkv4(k_index(u32(k), kv_head), c4);
      vv = qkv4(v_index(u32(k), kv_head), c4);
    }
    tile_a[e] = kv;
    tile_b[e] = vv;
  }
  if (li < BK) {
    let k = k0 + i32(li);
    row_ok[li] = select(0u, 1u, k <= hi && mask[k].x != -1);
  }
}

/** Whether the query row attends to staged key j (token k): a real token of the hull, in its window. */
fn sees_staged(row: QueryRow, j: u32, k: i32) -> bool {
  return row.valid && row_ok[j] != 0u && in_window(k, row.start, i32(row.t));
}

/** The C partial scores at `p` summed in a fixed order. */
fn sum_part_s(p: u32) -> f32 {
  return (part_s[p] + part_s[p + 1u]) + (part_s[p + 2u] + part_s[p + 3u]);
}

fn sum_part_p(p: u32) -> f32 {
  return (part_p[p] + part_p[p + 1u]) + (part_p[p + 2u] + part_p[p + 3u]);
}
