// Global L2 norm of several gradient buffers and the clip factor of torch.nn.utils.clip_grad_norm_,
// in two deterministic stages (fixed summation order, no atomics):
//   partial  (one dispatch per gradient buffer): each workgroup sums the squares of one 4096-element
//            chunk (16 per thread, fixed tree) into partials[offset + chunk] = (sumsq, nonFinite count)
//   finalize (one workgroup): sums all partials in a fixed order and writes
//            out = [sumsq, norm, scale, nonFinite]
//            scale = min(1, maxNorm / (norm + 1e-6)) (1 when maxNorm ≤ 0: no clipping)
//            nonFinite = 1 when any gradient element is NaN/±Inf (detected from its bits, which no
//            fast-math assumption can fold away), 2 when the finite squares overflow f32; scale is
//            then 0. Non-finite elements are left out of sumsq so it stays informative.

// #include "lib/workgroup"

struct Params {
  n: u32, // partial: elements of this buffer; finalize: number of partials
  offset: u32, // partial: first partial slot of this buffer
  maxNorm: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> partials: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32, 4>;

const WG: u32 = 256u;
const ITEMS: u32 = 16u;
const CHUNK: u32 = 4096u; // WG * ITEMS

var<workgroup> red: array<vec2<f32>, WG>;

fn is_finite_bits(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn reduce(lid: u32, v: vec2<f32>) -> vec2<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { red[lid] += red[lid + stride]; }
    workgroupBarrier();
  }
  return red[0];
}

@compute @workgroup_size(WG)
fn partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let chunk = workgroupIndex(wg, nwg);
  let base = chunk * CHUNK;
  if (base >= params.n) { return; } // spare workgroups of a folded grid
  var s = vec2<f32>(0.0, 0.0);
  for (var k = 0u; k < ITEMS; k++) {
    let i = base + k * WG + lid;
    if (i < params.n) {
      let g = grad[i];
      if (is_finite_bits(g)) { s.x += g * g; } else { s.y += 1.0; }
    }
  }
  let total = reduce(lid, s);
  if (lid == 0u) { partials[params.offset + chunk] = total; }
}

@compute @workgroup_size(WG)
fn finalize(@builtin(local_invocation_index) lid: u32) {
  var s = vec2<f32>(0.0, 0.0);
  for (var k = lid; k < params.n; k += WG) { s += partials[k]; }
  let total = reduce(lid, s);
  if (lid == 0u) {
    let sumsq = total.x;
    let norm = sqrt(sumsq);
    var flag = 0.0;
    if (total.y > 0.0) { flag = 1.0; } else if (!is_finite_bits(sumsq)) { flag = 2.0; }
    var scale = 1.0;
    if (params.maxNorm > 0.0) { scale = min(1.0, params.maxNorm / (norm + 1e-6)); }
    if (flag != 0.0) { scale = 0.0; }
    out[0] = sumsq;
    out[1] = norm;
    out[2] = scale;
    out[3] = flag;
  }
}
