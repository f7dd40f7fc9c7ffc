// Matmul against a frozen weight W [rows, cols] (Hugging Face [out, in]) stored in its own format,
// dequantized on the fly as it is read (the dequantized weight never exists in memory):
//   forward  (BACKWARD = false): C[m, cOffset + n] = alpha · Σ_k A[m, aOffset + k] · W[n, k] + beta · C
//                                (y = x·Wᵀ; n runs over W rows, k over W columns)
//   backward (BACKWARD = true):  C[m, cOffset + n] = alpha · Σ_k A[m, aOffset + k] · W[k, n] + beta · C
//                                (dx = dy·W; n runs over W columns, k over W rows)
// A and C are row-major f32 with row strides lda / ldc, so a dispatch can read or write a column
// range of a wider matrix (a weight split by rows across bindings).
//
// FORMAT: 0 = f32, 1 = f16 (IEEE half pairs packed in u32), 2 = q8_0, 3 = q4_0 (GGUF blocks: f16 scale
// then 32 × i8, 34 bytes; f16 scale then 16 nibble bytes, 18 bytes, low nibbles elements 0..15).
// W is bound as array<u32>; rows start at byte wBase + row · wRowBytes (any even offset), blocks are
// read with byte arithmetic on u32 words and f16 via unpack2x16float, so no shader-f16 is needed.
// Block-format rows are padded with zero weights to whole blocks (quant.ts).
//
// The 'cpu' kernel set (GPU adapters get shaders/matmul_weight_tiled.wgsl; both take the dequantizing
// helpers wordAt / halfAt / w4 / w4Edge from shaders/lib/dequant.wgsl). The blocking is that of
// shaders/matmul.wgsl: barrier-free, no workgroup memory, each thread owns an 8×8 block of C as four
// 4×4 blocks and walks K four at a time, multiplying mat4x4 blocks of A and of W. W is read four
// consecutive columns of one row at a time (`w4`, one quantization block never straddled), so both
// directions dequantize the same way: forward takes four rows n0..n0+3 at columns k..k+3, backward
// four rows k..k+3 at columns n0..n0+3.
//
// Two entry points, the same algorithm:
//   main           A bound as vec4 rows: needs lda and aOffset multiples of 4 (binding offsets are
//                  multiples of minStorageBufferOffsetAlignment ≥ 32, hence of 16 bytes).
//   main_scalar    A read with scalar loads, for any lda / aOffset.
// Edges: rows past M (and forward W rows past N) are clamped to the last one; backward columns past
// N use whatever W holds there (a column of C depends only on its own W column): all computed,
// never stored. In the last, partial k-step A and W are zero for k ≥ K; f32 / f16 W columns past
// wCols read as zero (w4Edge), block formats are padded with zeros.
//
// The loads of A, the store and both entry points are in shaders/lib/blocked.wgsl (shared with
// matmul.wgsl); this file loads W (indexA / indexC: shaders/lib/matmul_weight_io.wgsl).

// #include "lib/matmul_weight_io"

// #include "lib/dequant"
// #include "lib/blocked"

// op(W)'s blocks, as lib/blocked takes op(B)'s: blockB[j][kk] = op(W)[k + kk, n0 + j].
fn blockB4(k: u32, n0: u32) -> mat4x4<f32> {
  if (BACKWARD) {
    // Rows k .. k + 3 of W at columns n0 .. n0 + 3 (columns past N are never stored).
    var t: mat4x4<f32>;
    if (k + 4u > params.K) {
      for (var kk = 0u; k + kk < params.K; kk++) { t[kk] = w4Edge(k + kk, n0); }
    } else if (n0 + 4u > params.N) {
      t = mat4x4<f32>(w4Edge(k, n0), w4Edge(k + 1u, n0), w4Edge(k + 2u, n0), w4Edge(k + 3u, n0));
    } else {
      t = mat4x4<f32>(w4(k, n0), w4(k + 1u, n0), w4(k + 2u, n0), w4(k + 3u, n0));
    }
    return transpose(t);
  }
  // Rows n0 .. n0 + 3 (clamped to the last) at columns k .. k + 3 (past wCols: zero).
  let last = params.N - 1u;
  let n = vec4<u32>(min(n0, last), min(n0 + 1u, last), min(n0 + 2u, last), min(n0 + 3u, last));
  if (k + 4u > params.K) {
    return mat4x4<f32>(w4Edge(n.x, k), w4Edge(n.y, k), w4Edge(n.z, k), w4Edge(n.w, k));
  }
  return mat4x4<f32>(w4(n.x, k), w4(n.y, k), w4(n.z, k), w4(n.w, k));
}

// W's loads do not depend on how A is read: both entry points (lib/blocked) use them.
fn blockB1(k: u32, n0: u32) -> mat4x4<f32> { return blockB4(k, n0); }
