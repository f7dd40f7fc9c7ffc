// Dropout with a stateless mask: element i is kept when hash(i, key) >= threshold, where key is
// derived on the CPU from (seed, site, step) (kernels/lora.ts: dropoutKey). The same key gives the
// same mask, so the backward pass and a resumed run reproduce it without stored RNG state.
//   dst[i] = (keep(i) ? src[i] · scale : 0) + beta · dst[i]
// forward: src = x, beta = 0 (dst = dropped x); backward: src = d(dropped x), dst = dx, beta = 1.
// The 1D index is folded into x/y workgroups (at most 65535 per dimension).

struct Params {
  n: u32,
  key: u32,
  threshold: u32,
  scale: f32,
  beta: f32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

// lowbias32 (Chris Wellons' hash prospector): a bijection of u32 with strong avalanche.
fn mix32(x: u32) -> u32 {
  var h = x;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

fn keep(i: u32) -> bool {
  return mix32(mix32(i ^ params.key) + params.key) >= params.threshold;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wg.y * groups.x + wg.x) * 256u + lid;
  if (i >= params.n) { return; }
  var value = select(0.0, src[i] * params.scale, keep(i));
  if (params.beta != 0.0) { value += params.beta * dst[i]; }
  dst[i] = value;
}
