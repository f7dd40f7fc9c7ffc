// What shaders/attention.wgsl and attention_backward.wgsl (the 'cpu' kernel set) share
// (`// #include "lib/attention_rows"`; it includes lib/attention_io and lib/attention_mask): the
// workgroup shape and the rows of a query-side workgroup.
//
// Workgroups of TQ = 8 rows (× HPW heads of one K/V head's group on the query side: query_row in
// lib/attention_mask). Each invocation holds its own rows in private memory (as vec4s) and walks the
// tile's hull of the other side (keys for the forward and dQ, queries for dK/dV) one row at a time,
// reading those rows straight from the storage buffers. The hull depends only on the workgroup, so
// every invocation reads the same row at the same time (on a CPU driver the caches do the staging).
// No workgroup memory, no barriers.

// #include "lib/attention_io"
// #include "lib/attention_mask"

override HPW: u32 = 1u; // forward, backward_dq: query heads per workgroup (1 without shared K/V)
const TQ: u32 = 8u; // rows (tokens) per workgroup
const MAXD4: u32 = 64u; // largest head dimension / 4 (rows are held as vec4s)

alias Row = array<vec4<f32>, MAXD4>;

/** Invocation lid of a query-side workgroup (forward, dQ): token wg.x · TQ + lid.x, head lid.y. */
fn tile_row(wg: vec3<u32>, lid: vec3<u32>) -> QueryRow {
  return query_row(wg.x * TQ + lid.x, wg.y, HPW, lid.y);
}

/** The keys the tile of query-side workgroup wg_x visits (key_hull): workgroup-uniform. */
fn tile_hull(wg_x: u32) -> vec2<i32> {
  return key_hull(wg_x * TQ, TQ);
}

/** vec4s per row. */
fn hd4() -> u32 {
  return (params.hd + 3u) / 4u;
}
