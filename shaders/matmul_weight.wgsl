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

// #include "lib/matmul_weight_io"

// #include "lib/dequant"

// Blocks as mat4x4 (columns first), as in matmul.wgsl: blockA[kk][i] = A[m0 + i, k + kk] and
// blockW[j][kk] = op(W)[k + kk, n0 + j], so (blockA * blockW)[j][i] = Σ_kk A[m0 + i, ·]·op(W)[·, n0 + j].

fn rowA(m0: u32, i: u32) -> u32 { return min(m0 + i, params.M - 1u); }

fn blockW(k: u32, n0: u32) -> mat4x4<f32> {
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

fn indexA(m: u32, k: u32) -> u32 { return m * params.lda + params.aOffset + k; }

// Scalar loads; elements with k ≥ K are zero.
fn blockA1(m0: u32, k: u32) -> mat4x4<f32> {
  var t: mat4x4<f32>;
  for (var kk = 0u; kk < 4u; kk++) {
    if (k + kk >= params.K) { break; }
    for (var i = 0u; i < 4u; i++) { t[kk][i] = A[indexA(rowA(m0, i), k + kk)]; }
  }
  return t;
}

// vec4 loads along k (4 | lda and aOffset, so a group of four never straddles rows).
fn blockA4(m0: u32, k: u32) -> mat4x4<f32> {
  if (k + 4u > params.K) {
    var t: mat4x4<f32>;
    for (var kk = 0u; k + kk < params.K; kk++) {
      for (var i = 0u; i < 4u; i++) {
        let e = indexA(rowA(m0, i), k + kk);
        t[kk][i] = A4[e / 4u][e % 4u];
      }
    }
    return t;
  }
  return transpose(mat4x4<f32>(A4[indexA(rowA(m0, 0u), k) / 4u], A4[indexA(rowA(m0, 1u), k) / 4u],
                               A4[indexA(rowA(m0, 2u), k) / 4u], A4[indexA(rowA(m0, 3u), k) / 4u]));
}

fn store(acc: mat4x4<f32>, m0: u32, n0: u32) {
  for (var i = 0u; i < 4u; i++) {
    let row = m0 + i;
    if (row >= params.M) { return; }
    for (var j = 0u; j < 4u; j++) {
      let col = n0 + j;
      if (col >= params.N) { break; }
      let idx = row * params.ldc + params.cOffset + col;
      var value = params.alpha * acc[j][i];
      // beta == 0 must not read C: it may hold garbage (NaN) from a pooled buffer.
      if (params.beta != 0.0) { value += params.beta * C[idx]; }
      C[idx] = value;
    }
  }
}

// Each thread: the 8×8 block of C at (m0, n0) as four 4×4 blocks c[2·ib + jb] at (m0 + 4·ib, n0 + 4·jb).
fn storeAll(c: array<mat4x4<f32>, 4>, m0: u32, n0: u32) {
  store(c[0], m0, n0);
  store(c[1], m0, n0 + 4u);
  store(c[2], m0 + 4u, n0);
  store(c[3], m0 + 4u, n0 + 4u);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 8u;
  let n0 = gid.x * 8u;
  var c: array<mat4x4<f32>, 4>;
  for (var k = 0u; k < params.K; k += 4u) {
    let a0 = blockA4(m0, k);
    let a1 = blockA4(m0 + 4u, k);
    let b0 = blockW(k, n0);
    let b1 = blockW(k, n0 + 4u);
    c[0] += a0 * b0;
    c[1] += a0 * b1;
    c[2] += a1 * b0;
    c[3] += a1 * b1;
  }
  storeAll(c, m0, n0);
}

@compute @workgroup_size(8, 8)
fn main_scalar(@builtin(global_invocation_id) gid: vec3<u32>) {
  let m0 = gid.y * 8u;
  let n0 = gid.x * 8u;
  var c: array<mat4x4<f32>, 4>;
  for (var k = 0u; k < params.K; k += 4u) {
    let a0 = blockA1(m0, k);
    let a1 = blockA1(m0 + 4u, k);
    let b0 = blockW(k, n0);
    let b1 = blockW(k, n0 + 4u);
    c[0] += a0 * b0;
    c[1] += a0 * b1;
    c[2] += a1 * b0;
    c[3] += a1 * b1;
  }
  storeAll(c, m0, n0);
}
