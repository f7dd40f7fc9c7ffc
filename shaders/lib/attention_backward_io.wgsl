// The bindings of both attention backward shaders (shaders/attention_backward.wgsl: 'cpu' set,
// attention_flash_backward.wgsl: 'gpu' set), after lib/attention_io's qkv and mask, and the readers of
// out and d_out. `// #include "lib/attention_backward_io"` (it includes lib/attention_io).
//   out, d_out [T, n_head·hd]: the forward's output and its gradient; lse [T, n_head]: the forward's
//   logsumexp; d_qkv: dqkv [T, width] (the layout of qkv), or the partials of the dK/dV pass when
//   head_groups > 1 (dkv_index).

// #include "lib/attention_io"

@group(0) @binding(2) var<storage, read> out: array<f32>;
@group(0) @binding(3) var<storage, read> d_out: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_qkv: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

/** Floats 4·c4 .. 4·c4 + 3 of the out row at `base`, zeros past the head dimension. */
fn out4(base: u32, c4: u32) -> vec4<f32> {
  let d = 4u * c4;
  let v = vec4<f32>(out[base + d], out[base + d + 1u], out[base + d + 2u], out[base + d + 3u]);
  return head4(d, v);
}

/** The same for a row of d_out. */
fn d_out4(base: u32, c4: u32) -> vec4<f32> {
  let d = 4u * c4;
  let v = vec4<f32>(d_out[base + d], d_out[base + d + 1u], d_out[base + d + 2u], d_out[base + d + 3u]);
  return head4(d, v);
}

/**
 * Where the dK and dV rows of key k (K/V head kv_head) go from a dK/dV workgroup summing part `part`
 * of the K/V head's query heads (key_heads in lib/attention_mask): dqkv's K and V columns when
 * head_groups = 1; otherwise the partial row (part, k) of the buffer bound as d_qkv, laid out
 * [N, T, 2·kv_heads·hd]: [dK | dV] of every K/V head, as in dqkv's K and V columns.
 */
fn dkv_index(k: u32, kv_head: u32, part: u32) -> vec2<u32> {
  if (params.head_groups != 1u) {
    let ki = (part * params.T + k) * 2u * params.kv_heads * params.hd + kv_head * params.hd;
    return vec2<u32>(ki, ki + params.kv_heads * params.hd);
  }
  return vec2<u32>(k_index(k, kv_head), v_index(k, kv_head));
}
