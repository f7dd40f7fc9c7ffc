// The store of a 4×4 block of results, shared by the register-blocked (shaders/lib/blocked.wgsl) and
// the workgroup-memory tiled (shaders/lib/tiled.wgsl) matmuls (`// #include "lib/matmul_store"`).
// The including shader declares:
//   params.M, params.N (u32), params.alpha, params.beta (f32); C: array<f32> (read_write)
//   fn indexC(row: u32, col: u32) -> u32: C[row, col]'s index in C (row < M, col < N)

// C[m0 + i, n0 + j] = alpha · acc[j][i] + beta · C (mat4x4 columns first: acc's columns are the
// block's columns), in-range elements only.
fn store(acc: mat4x4<f32>, m0: u32, n0: u32) {
  for (var i = 0u; i < 4u; i++) {
    let row = m0 + i;
    if (row >= params.M) { return; }
    for (var j = 0u; j < 4u; j++) {
      let col = n0 + j;
      if (col >= params.N) { break; }
      let idx = indexC(row, col);
      var value = params.alpha * acc[j][i];
      // beta == 0 must not read C: it may hold garbage (NaN) from a pooled buffer.
      if (params.beta != 0.0) { value += params.beta * C[idx]; }
      C[idx] = value;
    }
  }
}
