// The interface of every attention shader, both kernel sets ('cpu': shaders/attention.wgsl,
// attention_backward.wgsl; 'gpu': attention_flash.wgsl, attention_flash_backward.wgsl): the parameters
// the host side writes (src/engine/kernels/attention.ts), the qkv and mask bindings and the qkv / out
// layouts. `// #include "lib/attention_io"`; the including shader declares its other bindings,
// `params` among them (binding 4 in the forward, 6 in the backward: lib/attention_backward_io).
//
// qkv  [T, width]: the fused qkv projection. kv_heads ≥ 1 (grouped: multi-query, grouped-query):
//      width = (n_head + 2·kv_heads)·hd, columns [Q (n_head heads) | K (kv_heads) | V (kv_heads)],
//      query head h reads K/V head h / G, G = n_head / kv_heads (Hugging Face repeat_kv);
//      kv_heads = 0: GPT-BigCode multi-head, width = 3·n_head·hd, Hugging Face's [n_head, 3, hd] view
//      (head h: q at 3h·hd, k, v after it).
// mask [T] vec4<i32>: (segment (−1 = padding), key_start, query_end, unused), see lib/attention_mask.
// out  [T, n_head·hd] (heads contiguous, ready for c_proj).

struct Params {
  T: u32,
  n_head: u32,
  hd: u32,
  kv_heads: u32, // 0: the interleaved multi-head layout
  scale: f32,
  head_groups: u32, // backward: parts of a K/V head's group summed apart (see attention_reduce.wgsl)
  hpw: u32, // 'gpu' set: query heads per workgroup (1 without shared K/V); 'cpu': the override HPW
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<vec4<i32>>;

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

/** v = floats d .. d + 3 of a row, the lanes past the head dimension zeroed (never another row's). */
fn head4(d: u32, v: vec4<f32>) -> vec4<f32> {
  return select(vec4<f32>(0.0), v, vec4<u32>(d) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(params.hd));
}

/** Floats 4·c4 .. 4·c4 + 3 of the qkv row at `base`, zeros past the head dimension. */
fn qkv4(base: u32, c4: u32) -> vec4<f32> {
  let d = 4u * c4;
  let v = vec4<f32>(qkv[base + d], qkv[base + d + 1u], qkv[base + d + 2u], qkv[base + d + 3u]);
  return head4(d, v);
}

/** The lanes of a vec4 of partial sums, added in a fixed order. */
fn sum4(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}
