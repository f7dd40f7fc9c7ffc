// Bias of a linear layer over activations Y [T, C] (row-major):
//   forward:  Y[t, c] += b[c]                                  (in place, one element per invocation)
//   backward: db[c] = (accumulate ? db[c] : 0) + Σ_t dY[t, c]  (column sums, deterministic)
// The backward gives each workgroup 32 columns × 8 row lanes: lane r sums rows r, r+8, r+16, … in
// order, then the 8 lane sums are added in a fixed tree, so the result never depends on scheduling
// (no float atomics) and reads of 32 neighbouring columns are contiguous.

// #include "lib/workgroup"

struct Params {
  T: u32,
  C: u32,
  accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

@group(0) @binding(1) var<storage, read> dY: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

const WG: u32 = 256u;
const COLS: u32 = 32u;
const LANES: u32 = 8u;

var<workgroup> partial: array<array<f32, COLS>, LANES>;

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  if (i >= params.T * params.C) { return; }
  Y[i] += b[i % params.C];
}

@compute @workgroup_size(COLS, LANES)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
  let col = workgroupIndex(wg, nwg) * COLS + lid.x;
  var sum = 0.0;
  if (col < params.C) {
    for (var t = lid.y; t < params.T; t += LANES) {
      sum += dY[t * params.C + col];
    }
  }
  partial[lid.y][lid.x] = sum;
  workgroupBarrier();
  for (var stride = LANES / 2u; stride > 0u; stride /= 2u) {
    if (lid.y < stride) {
      partial[lid.y][lid.x] += partial[lid.y + stride][lid.x];
    }
    workgroupBarrier();
  }
  if (lid.y == 0u && col < params.C) {
    var total = partial[0][lid.x];
    if (params.accumulate != 0u) { total += db[col]; }
    db[col] = total;
  }
}
