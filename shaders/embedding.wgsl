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

// The index in the token table of element i = t·C + c of X: row ids[t] (clamped), column c.
fn tableIndex(i: u32, t: u32) -> u32 {
  let id = u32(clamp(ids[t], 0, i32(params.V) - 1));
  return id * params.C + (i - t * params.C);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  let C = params.C;
  if (i >= params.T * C) { return; }
  let t = i / C;
  let p = u32(clamp(pos[t], 0, i32(params.P) - 1));
  X[i] = wte[tableIndex(i, t)] + wpe[p * C + (i - t * C)];
}

@compute @workgroup_size(WG)
fn tokens(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  let C = params.C;
  if (i >= params.T * C) { return; }
  tokX[i] = tokWte[tableIndex(i, i / C)];
}

@compute @workgroup_size(WG)
fn scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
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
