// Matmul against a frozen weight W [rows, cols] (Hugging Face [out, in]) stored in its own format,
// dequantized on the fly while staging tiles (the dequantized weight never exists in memory):
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
//
// A 64×64 output tile per workgroup of 16×16 threads (4×4 outputs each, strided by 16), K staged
// 32 at a time = one quantization block; four threads dequantize each (row, block) pair.

override FORMAT: u32 = 2u;
override BACKWARD: bool = false;

struct Params {
  M: u32,
  N: u32,
  K: u32,
  lda: u32,
  aOffset: u32,
  ldc: u32,
  cOffset: u32,
  wRows: u32,
  wCols: u32,
  wBase: u32,
  wRowBytes: u32,
  alpha: f32,
  beta: f32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const TILE: u32 = 64u;
const TK: u32 = 32u;
const THREADS: u32 = 256u;

var<workgroup> tileA: array<array<f32, TILE>, TK>; // [k][m]
var<workgroup> tileW: array<array<f32, TILE>, TK>; // [k][n]

// The 32-bit little-endian word at an even byte offset.
fn wordAt(byteOffset: u32) -> u32 {
  let i = byteOffset >> 2u;
  if ((byteOffset & 2u) == 0u) { return W[i]; }
  return (W[i] >> 16u) | (W[i + 1u] << 16u);
}

// The f16 at an even byte offset, as f32.
fn halfAt(byteOffset: u32) -> f32 {
  let w = W[byteOffset >> 2u];
  return unpack2x16float(select(w, w >> 16u, (byteOffset & 2u) != 0u)).x;
}

// Position inside its 32-block of element e (0..7) of part q (0..3).
fn partPos(q: u32, e: u32) -> u32 {
  if (FORMAT == 3u) { return select(4u * q + e, 12u + 4u * q + e, e >= 4u); }
  return 8u * q + e;
}

// Eight dequantized weights of block `blk` of W row `row`: part q of four (see partPos).
fn loadPart(row: u32, blk: u32, q: u32) -> array<f32, 8> {
  var v: array<f32, 8>;
  let nBlocks = (params.wCols + 31u) / 32u;
  if (row >= params.wRows || blk >= nBlocks) { return v; }
  let rowByte = params.wBase + row * params.wRowBytes;
  if (FORMAT == 2u) {
    let base = rowByte + blk * 34u;
    let d = halfAt(base);
    let w0 = bitcast<i32>(wordAt(base + 2u + 8u * q));
    let w1 = bitcast<i32>(wordAt(base + 6u + 8u * q));
    for (var e = 0u; e < 4u; e++) {
      v[e] = f32(extractBits(w0, 8u * e, 8u)) * d;
      v[e + 4u] = f32(extractBits(w1, 8u * e, 8u)) * d;
    }
  } else if (FORMAT == 3u) {
    let base = rowByte + blk * 18u;
    let d = halfAt(base);
    let w = wordAt(base + 2u + 4u * q);
    for (var e = 0u; e < 4u; e++) {
      v[e] = (f32(extractBits(w, 8u * e, 4u)) - 8.0) * d;
      v[e + 4u] = (f32(extractBits(w, 8u * e + 4u, 4u)) - 8.0) * d;
    }
  } else {
    let col = blk * 32u + 8u * q;
    if (FORMAT == 1u) {
      let base = rowByte + col * 2u;
      if (col + 8u <= params.wCols) {
        for (var e = 0u; e < 4u; e++) {
          let pair = unpack2x16float(wordAt(base + 4u * e));
          v[2u * e] = pair.x;
          v[2u * e + 1u] = pair.y;
        }
      } else {
        for (var e = 0u; e < 8u; e++) {
          if (col + e < params.wCols) { v[e] = halfAt(base + 2u * e); }
        }
      }
    } else {
      let base = (rowByte >> 2u) + col;
      for (var e = 0u; e < 8u; e++) {
        if (col + e < params.wCols) { v[e] = bitcast<f32>(W[base + e]); }
      }
    }
  }
  return v;
}

fn loadA(m: u32, k: u32) -> f32 {
  if (m >= params.M || k >= params.K) { return 0.0; }
  return A[m * params.lda + params.aOffset + k];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  let unit = tid / 4u;
  let q = tid % 4u;
  var acc: array<array<f32, 4>, 4>;

  for (var k0 = 0u; k0 < params.K; k0 += TK) {
    for (var l = 0u; l < 8u; l++) {
      let i = tid + l * THREADS;
      tileA[i % TK][i / TK] = loadA(row0 + i / TK, k0 + i % TK);
    }
    if (BACKWARD) {
      // 32 W rows (k) × 2 blocks (n): unit = 2·row + block.
      let v = loadPart(k0 + unit / 2u, col0 / 32u + unit % 2u, q);
      for (var e = 0u; e < 8u; e++) { tileW[unit / 2u][(unit % 2u) * 32u + partPos(q, e)] = v[e]; }
    } else {
      // 64 W rows (n) × 1 block (k).
      let v = loadPart(col0 + unit, k0 / 32u, q);
      for (var e = 0u; e < 8u; e++) { tileW[partPos(q, e)][unit] = v[e]; }
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = tileA[k][lid.y + 16u * i];
        b[i] = tileW[k][lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y + 16u * i;
    if (row >= params.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x + 16u * j;
      if (col >= params.N) { continue; }
      let idx = row * params.ldc + params.cOffset + col;
      var value = params.alpha * acc[i][j];
      // beta == 0 must not read C: it may hold garbage (NaN) from a pooled buffer.
      if (params.beta != 0.0) { value += params.beta * C[idx]; }
      C[idx] = value;
    }
  }
}
