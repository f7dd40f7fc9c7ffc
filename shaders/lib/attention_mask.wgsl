// Which keys a query sees and which heads a workgroup serves, for both kernel sets
// (`// #include "lib/attention_mask"`; it includes lib/attention_io).
//
// mask [T] vec4<i32>: (segment (−1 = padding), key_start, query_end, unused). Non-padding query t
//      attends to keys k with key_start ≤ k ≤ t and segment[k] ≠ −1 (a sliding window is in
//      key_start; segments are never compared); query_end[k] is one past the last query that may
//      attend to key k. Padding queries output zeros and get zero gradients.
//
// Tile skipping: a workgroup's loop over the other side runs over the hull of its tile (key_hull for
// query tiles, query_hull for key tiles), which depends only on the workgroup, so the cost follows
// Σ len² of the packed segments, not the pack length². Inside the hull, padding rows are skipped (or
// staged as zeros) by the whole workgroup, so whatever they hold (even NaN) never reaches a sum;
// other masked pairs (real tokens of a neighbouring segment, outside a window) enter with weight 0.

// #include "lib/attention_io"

/** A query-side row (forward, dQ): token t of query head h, which reads K/V head kv_head. */
struct QueryRow {
  t: u32,
  kv_head: u32,
  h: u32,
  in_range: bool, // t < T and h a head of the group (not a spare row of the last chunk): has output
  valid: bool, // in range and not padding: it attends
  start: i32, // its key_start
}

/**
 * Row (token t, head j_local of the workgroup's hpw heads) of a query-side workgroup: wg_y = (K/V head,
 * chunk of hpw heads of its group), so the K/V head comes from the workgroup alone (K/V indices stay
 * workgroup-uniform) and the hpw heads share every K/V row read. Heads j ≥ G of the last chunk take
 * no part.
 */
fn query_row(t: u32, wg_y: u32, hpw: u32, j_local: u32) -> QueryRow {
  let G = group_size();
  let chunks = (G + hpw - 1u) / hpw;
  let kv_head = wg_y / chunks;
  let j = (wg_y % chunks) * hpw + j_local; // head within the group
  var row = QueryRow(t, kv_head, kv_head * G + j, t < params.T && j < G, false, 0);
  if (row.in_range) {
    let m = mask[t];
    row.valid = m.x != -1;
    row.start = m.y;
  }
  return row;
}

/** Causal mask with the window: query t whose first key is `start` may see key k (not padding). */
fn in_window(k: i32, start: i32, t: i32) -> bool {
  return k >= start && k <= t;
}

/** Whether the query row attends to key k, a non-padding token (the callers skip padding keys). */
fn sees(row: QueryRow, k: i32) -> bool {
  return row.valid && in_window(k, row.start, i32(row.t));
}

/**
 * The keys a query tile [q0, q0 + n) visits: [min key_start, last non-padding query] over its
 * non-padding queries (lo > hi: none). The union of their ranges [key_start, t] is this interval
 * (each ends at its own t, and the tokens are consecutive): no key outside it is seen by any of
 * them, and every non-padding key inside it by at least one.
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

/**
 * The queries that may see a key tile [k0, k0 + n): [first non-padding key, max query_end − 1]
 * over its non-padding keys, at most T − 1 (lo > hi: none).
 */
fn query_hull(k0: u32, n: u32) -> vec2<i32> {
  var lo = i32(params.T);
  var hi = -1;
  for (var e = 0u; e < n; e++) {
    let k = k0 + e;
    if (k < params.T) {
      let m = mask[k];
      if (m.x != -1) {
        lo = min(lo, i32(k));
        hi = max(hi, m.z - 1);
      }
    }
  }
  return vec2<i32>(lo, min(hi, i32(params.T) - 1));
}

/** The query heads of a key-side (dK/dV) workgroup: query heads [begin, end) of K/V head kv_head. */
struct KeyHeads {
  kv_head: u32,
  part: u32, // which of the head_groups parts of the group
  begin: u32,
  end: u32,
}

/**
 * wg_y = (K/V head, part of its group): the workgroup sums the query heads of that part of the K/V
 * head's group (the whole group when head_groups = 1; the interleaved layout: G = 1, its head).
 */
fn key_heads(wg_y: u32) -> KeyHeads {
  let G = group_size();
  let kv_head = wg_y / params.head_groups;
  let part = wg_y % params.head_groups;
  let begin = kv_head * G + part * G / params.head_groups;
  let end = kv_head * G + (part + 1u) * G / params.head_groups;
  return KeyHeads(kv_head, part, begin, end);
}
