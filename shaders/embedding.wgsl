// Token (+ position) embedding:
//   forward: X[t, c] = wte[ids[t], c] + wpe[pos[t], c]     (X [T, C]; wte [V, C]; wpe [P, C]; GPT-BigCode)
//   tokens:  X[t, c] = wte[ids[t], c]                      (no position table: rotary-position models)
//            ids/pos are clamped into their tables so a bad id can never read out of bounds; the CPU
//            side validates them (kernels/embedding.ts) and reports bad input properly.
//   scatter: the backward, dTable[row, c] += Σ_{tokens with that row} dX[token, c], deterministic: the
//            CPU sorts the tokens by row once per step into an index list
//              index = [U, start[0..T], rows[0..T), order[0..T)]
//            (U distinct rows; group u holds tokens order[start[u] .. start[u+1]) of row rows[u], in
//            ascending token order), and one invocation per (group, column) sums its tokens in that
//            order: no float atomics, repeated ids handled, bitwise reproducible.

// #include "lib/workgroup"

struct Params {
  T: u32,
  C: u32,
  V: u32, // forward: wte rows; scatter: rows of the destination table
  P: u32, // forward: wpe rows (tokens: unused)
}

@group(0) @binding(0) var<uniform> params: Params;
// forward (tokens binds ids at 1 too)
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> pos: array<i32>;
@group(0) @binding(3) var<storage, read> wte: array<f32>;
@group(0) @binding(4) var<storage, read> wpe: array<f32>;
@group(0) @binding(5) var<storage, read_write> X: array<f32>;
// scatter
@group(0) @binding(1) var<storage, read> index: array<u32>;
@group(0) @binding(2) var<storage, read> dX: array<f32>;
@group(0) @binding(3) var<storage, read_write> dTable: array<f32>;
// tokens: [params, ids, tokWte, tokX]
@group(0) @binding(2) var<storage, read> tokWte: array<f32>;
@group(0) @binding(3) var<storage, read_write> tokX: array<f32>;

const WG: u32 = 256u;

fn linear(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return workgroupIndex(wg, nwg) * WG + lid;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = linear(wg, nwg, lid);
  let C = params.C;
  if (i >= params.T * C) { return; }
  let t = i / C;
  let c = i - t * C;
  let id = u32(clamp(ids[t], 0, i32(params.V) - 1));
  let p = u32(clamp(pos[t], 0, i32(params.P) - 1));
  X[i] = wte[id * C + c] + wpe[p * C + c];
}

@compute @workgroup_size(WG)
fn tokens(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = linear(wg, nwg, lid);
  let C = params.C;
  if (i >= params.T * C) { return; }
  let t = i / C;
  let c = i - t * C;
  let id = u32(clamp(ids[t], 0, i32(params.V) - 1));
  tokX[i] = tokWte[id * C + c];
}

@compute @workgroup_size(WG)
fn scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = linear(wg, nwg, lid);
  let C = params.C;
  let T = params.T;
  if (i >= T * C) { return; }
  let u = i / C;
  let c = i - u * C;
  if (u >= min(index[0], T)) { return; }
  let start = index[1u + u];
  let end = min(index[2u + u], T);
  let row = min(index[T + 2u + u], params.V - 1u);
  var sum = 0.0;
  for (var k = start; k < end; k++) {
    let token = min(index[2u * T + 2u + k], T - 1u);
    sum += dX[token * C + c];
  }
  dTable[row * C + c] += sum;
}
