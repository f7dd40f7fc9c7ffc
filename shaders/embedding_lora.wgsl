// LoRA on the token embedding (PEFT's lora.Embedding): A [R, V] (lora_embedding_A), B [D, R]
// (lora_embedding_B), s = alpha / R. The two matmuls x += s·h·Bᵀ, dB = s·dxᵀ·h and dh = s·dx·B are the
// shared matmul (kernels/embedding-lora.ts); this shader does the two sparse parts:
//   gather:  h[t, k] = A[k, ids[t]]                         (h [T, R]; a column of A per token)
//            ids are clamped into [0, V) so a bad id can never read out of bounds; the CPU side
//            validates them (setTokens) and reports bad input properly.
//   scatter: dA[k, row] += Σ_{tokens with that row} dh[token, k], deterministic: the same CPU-sorted
//            index as shaders/embedding.wgsl (kernels/embedding.ts scatterIndex)
//              index = [U, start[0..T], rows[0..T), order[0..T)]
//            and one invocation per (group, k) sums its tokens in ascending token order: no float
//            atomics, repeated ids handled, bitwise reproducible. A is [R, V], so the destination
//            element is dA[k·V + row] (a column of dA per distinct id).

// #include "lib/workgroup"

struct Params {
  T: u32,
  R: u32, // rank
  V: u32, // columns of A (vocab size)
  _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// gather
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read> A: array<f32>;
@group(0) @binding(3) var<storage, read_write> h: array<f32>;
// scatter
@group(0) @binding(1) var<storage, read> index: array<u32>;
@group(0) @binding(2) var<storage, read> dh: array<f32>;
@group(0) @binding(3) var<storage, read_write> dA: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  let R = params.R;
  if (i >= params.T * R) { return; }
  let t = i / R;
  let k = i - t * R;
  let id = u32(clamp(ids[t], 0, i32(params.V) - 1));
  h[i] = A[k * params.V + id];
}

@compute @workgroup_size(WG)
fn scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = invocationIndex(wg, nwg, lid, WG);
  let R = params.R;
  let T = params.T;
  if (i >= T * R) { return; }
  let u = i / R;
  let k = i - u * R;
  if (u >= min(index[0], T)) { return; }
  // Indices read from the index buffer are clamped too: a malformed index stays in bounds.
  let start = index[1u + u];
  let end = min(index[2u + u], T);
  let row = min(index[T + 2u + u], params.V - 1u);
  var sum = 0.0;
  for (var j = start; j < end; j++) {
    let token = min(index[2u * T + 2u + j], T - 1u);
    sum += dh[token * R + k];
  }
  dA[k * params.V + row] += sum;
}
