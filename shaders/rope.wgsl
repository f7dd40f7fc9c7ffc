// Rotary position embedding (RoPE), in place on a fused qkv buffer [T, row_stride], as Hugging Face
// `apply_rotary_pos_emb` ("rotate_half": element i of a head pairs with element i + d/2):
//   a_i          = f32(pos[t]) · inv_freq[i]        inv_freq[i] = 1 / (s·θ^(2i/d)), from the CPU
//   forward:  out[i] = v[i]·cos a_i − v[i+d/2]·sin a_i,   out[i+d/2] = v[i+d/2]·cos a_i + v[i]·sin a_i
//   backward: the transpose R(−a_i) of that rotation applied to the gradient (sin negated).
// Applied to every Q head (n_head) and K head (n_kv_head) of each token; V and any other column are
// never read or written. Q head h starts at column q_offset + h·q_head_stride, K head g at
// k_offset + g·k_head_stride (the CPU checks heads lie in the row and do not overlap).
// One invocation per (token, head, pair i): it reads and writes both elements of its pair, so in place
// is race-free.
//
// Precision: the angle is rounded to f32 as Hugging Face computes it (inv_freq in f32, the product in
// f32): its error is up to ~a·2⁻²³ rad (a ≤ pos), inherent to the f32 recipe. cos/sin are not WGSL's
// builtins, whose accuracy WGSL guarantees only to 2⁻¹¹ absolute and only inside [−π, π]: the angle
// is reduced modulo π/2 (Cody–Waite, π/2 in three parts) and evaluated with Cephes' sinf/cosf
// polynomials on [−π/4, π/4] (≲ 2e-7 absolute), the same on every adapter.

// #include "lib/workgroup"

struct Params {
  T: u32,
  n_head: u32,
  n_kv_head: u32,
  half: u32, // d/2
  row_stride: u32,
  q_offset: u32,
  q_head_stride: u32,
  k_offset: u32,
  k_head_stride: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pos: array<i32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(3) var<storage, read_write> X: array<f32>;

const WG: u32 = 256u;

// π/2 = PIO2_1 + PIO2_2 + PIO2_3. PIO2_1 has 8 significant bits and PIO2_2 11, so k·PIO2_1 is exact
// for |k| < 2¹⁶ and k·PIO2_2 for |k| < 2¹³ (past that it rounds by ≤ 2⁻²⁴·|k·PIO2_2|, ~6e-7 at
// a = 32768, far below the angle's own f32 rounding there).
const PIO2_1: f32 = 1.5703125;
const PIO2_2: f32 = 4.837512969970703125e-4;
const PIO2_3: f32 = 7.5497899487686e-8;
const TWO_OVER_PI: f32 = 0.63661977236758134;

// (sin a, cos a) in f32.
fn sincos(a: f32) -> vec2<f32> {
  let k = round(a * TWO_OVER_PI);
  // a − k·PIO2_1 is exact (Sterbenz: both terms within a factor 2 of each other when k ≠ 0).
  let r = ((a - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
  let z = r * r;
  // Cephes sinf / cosf, |r| ≤ π/4 (a hair more from rounding k; the polynomials hold there too).
  let s = fma(fma(fma(-1.9515295891e-4, z, 8.3321608736e-3), z, -1.6666654611e-1), z * r, r);
  let c = fma(fma(fma(2.443315711809948e-5, z, -1.388731625493765e-3), z, 4.166664568298827e-2), z * z,
              fma(-0.5, z, 1.0));
  // Quadrant k mod 4 (two's complement: −1 & 3 = 3): rotate (sin r, cos r) by k·π/2.
  switch (i32(k) & 3) {
    case 0: { return vec2<f32>(s, c); }
    case 1: { return vec2<f32>(c, -s); }
    case 2: { return vec2<f32>(-s, -c); }
    default: { return vec2<f32>(-c, s); }
  }
}

// `sign` = 1: forward (rotate by +a); −1: backward (by −a).
fn rope(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, sign: f32) {
  let half = params.half;
  let slots = params.n_head + params.n_kv_head;
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.T * slots * half) { return; }
  let per_token = slots * half;
  let t = i / per_token;
  let rest = i - t * per_token;
  let head = rest / half;
  let j = rest - head * half;
  var start: u32;
  if (head < params.n_head) {
    start = params.q_offset + head * params.q_head_stride;
  } else {
    start = params.k_offset + (head - params.n_head) * params.k_head_stride;
  }
  let e = t * params.row_stride + start + j;
  // As Hugging Face: the position converted to f32, times the f32 inv_freq, rounded once.
  let sc = sincos(f32(pos[t]) * inv_freq[j]);
  let sn = sign * sc.x;
  let v0 = X[e];
  let v1 = X[e + half];
  X[e] = v0 * sc.y - v1 * sn;
  X[e + half] = v1 * sc.y + v0 * sn;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  rope(wg, nwg, lid, 1.0);
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  rope(wg, nwg, lid, -1.0);
}
