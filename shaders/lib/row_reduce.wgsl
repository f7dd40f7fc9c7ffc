// The workgroup shapes and the row reduction shared by the GPU-class normalizations
// (shaders/layernorm_rows.wgsl, shaders/rmsnorm_rows.wgsl): forward and backward run one workgroup of
// WG threads per row, backward_params one workgroup of COLS × LANES threads per block of COLS columns.

const WG: u32 = 128u; // threads per row (forward, backward); a power of two
const COLS: u32 = 32u; // columns per workgroup (backward_params)
const LANES: u32 = 8u; // row lanes per column (backward_params); a power of two
const BLOCK: u32 = 64u; // terms per partial sum within a lane (backward_params)

var<workgroup> red: array<f32, WG>;

// Σ of the WG values each thread put in red[lid]; every thread gets the total. Called in uniform
// control flow; the closing barrier lets the caller overwrite red afterwards.
fn reduce(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

var<workgroup> redLanes: array<vec2<f32>, COLS * LANES>;

// backward_params: the total over the LANES lanes (local_invocation_id.y) of column id.x of the
// pair each thread passes (a single sum passes (s, 0)); every thread gets its column's total. Called
// in uniform control flow.
fn reduceLanes(id: vec3<u32>, v: vec2<f32>) -> vec2<f32> {
  let slot = id.y * COLS + id.x;
  redLanes[slot] = v;
  workgroupBarrier();
  for (var h = LANES / 2u; h > 0u; h >>= 1u) {
    if (id.y < h) { redLanes[slot] += redLanes[slot + h * COLS]; }
    workgroupBarrier();
  }
  return redLanes[id.x];
}
