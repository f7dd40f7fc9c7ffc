// Matmul against a frozen weight W [rows, cols] in its storage format, GPU-class variant of
// shaders/matmul_weight.wgsl (read its header for the directions, formats, parameters and the byte
// layout of W; the dequantizing helpers wordAt / halfAt / w4 / w4Edge below are copied from it and
// must stay the same):
//   forward  (BACKWARD = false): C[m, cOffset + n] = alpha · Σ_k A[m, aOffset + k] · W[n, k] + beta · C
//   backward (BACKWARD = true):  C[m, cOffset + n] = alpha · Σ_k A[m, aOffset + k] · W[k, n] + beta · C
//
// The tiling of shaders/matmul_tiled.wgsl: a workgroup of 16×16 threads computes a 64×64 block of C,
// walking K in steps of 16; each thread stages one group of four of A's 64×16 tile and one of
// op(W)'s 16×64 tile into workgroup memory — W dequantized in the loader (w4: four consecutive
// columns of one row, never straddling a quantization block), so the tile holds f32 — then
// accumulates its 4×4 register block of C. f32 accumulation. Forward stages W[n0 + r, k .. k + 3]
// (along k, like a [N,K] B); backward W[k, n .. n + 3] (along n, like a [K,N] B).
// Elements past M, N or K are staged as 0; only in-range C is stored.
//
// Two entry points, the same algorithm:
//   main          A bound as vec4 rows: lda and aOffset multiples of 4.
//   main_scalar   A read with scalar loads, any lda / aOffset.

override FORMAT: u32 = 2u;
override BACKWARD: bool = false;

const TILE: u32 = 64u;  // C block per workgroup (TILE × TILE)
const TK: u32 = 16u;    // K step
const Q: u32 = 16u;     // vec4 per tile row (TILE / 4) = threads per side

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

// The two entry points never use both views of A, so they may share the binding number.
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(0) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// tileA[kk·16 + q] = A[m0 + 4q .. + 3, k0 + kk],  tileB[kk·16 + q] = op(W)[k0 + kk, n0 + 4q .. + 3]
var<workgroup> tileA: array<vec4<f32>, 256>;
var<workgroup> tileB: array<vec4<f32>, 256>;

// The 32-bit little-endian word at an even byte offset.
// Branch-free (a branch per read made the shader much slower to compile on lavapipe): the word past
// an aligned one is read and ignored (robust access keeps it in bounds).
fn wordAt(byteOffset: u32) -> u32 {
  let i = byteOffset >> 2u;
  let lo = W[i];
  return select(lo, (lo >> 16u) | (W[i + 1u] << 16u), (byteOffset & 2u) != 0u);
}

// The f16 at an even byte offset, as f32.
fn halfAt(byteOffset: u32) -> f32 {
  let w = W[byteOffset >> 2u];
  return unpack2x16float(select(w, w >> 16u, (byteOffset & 2u) != 0u)).x;
}

// W[row, col .. col + 3] dequantized; col is a multiple of 4, row < wRows and, for f32 / f16 (rows
// are not padded), col + 4 <= wCols (else w4Edge).
fn w4(row: u32, col: u32) -> vec4<f32> {
  let rowByte = params.wBase + row * params.wRowBytes;
  if (FORMAT == 2u) {
    // q8_0: the four i8 at positions col % 32 .. + 3 of the block.
    let base = rowByte + (col / 32u) * 34u;
    let q = bitcast<i32>(wordAt(base + 2u + col % 32u));
    let v = vec4<i32>(extractBits(q, 0u, 8u), extractBits(q, 8u, 8u), extractBits(q, 16u, 8u),
                      extractBits(q, 24u, 8u));
    return vec4<f32>(v) * halfAt(base);
  }
  if (FORMAT == 3u) {
    // q4_0: positions p < 16 are the low nibbles of bytes p, the rest the high nibbles of bytes p - 16.
    let base = rowByte + (col / 32u) * 18u;
    let pos = col % 32u;
    let q = wordAt(base + 2u + pos % 16u) >> select(0u, 4u, pos >= 16u);
    let v = vec4<u32>(extractBits(q, 0u, 4u), extractBits(q, 8u, 4u), extractBits(q, 16u, 4u),
                      extractBits(q, 24u, 4u));
    return (vec4<f32>(v) - 8.0) * halfAt(base);
  }
  if (FORMAT == 1u) {
    let base = rowByte + col * 2u;
    return vec4<f32>(unpack2x16float(wordAt(base)), unpack2x16float(wordAt(base + 4u)));
  }
  let base = (rowByte >> 2u) + col;
  return bitcast<vec4<f32>>(vec4<u32>(W[base], W[base + 1u], W[base + 2u], W[base + 3u]));
}

// w4 at the end of a row: f32 / f16 columns past wCols read as 0 (block formats are padded with 0).
fn w4Edge(row: u32, col: u32) -> vec4<f32> {
  if (FORMAT >= 2u) { return w4(row, col); }
  let rowByte = params.wBase + row * params.wRowBytes;
  let cols = vec4<u32>(col) + vec4<u32>(0u, 1u, 2u, 3u);
  let c = min(cols, vec4<u32>(params.wCols - 1u));
  var t: vec4<f32>;
  if (FORMAT == 1u) {
    t = vec4<f32>(halfAt(rowByte + 2u * c.x), halfAt(rowByte + 2u * c.y), halfAt(rowByte + 2u * c.z),
                  halfAt(rowByte + 2u * c.w));
  } else {
    let base = rowByte >> 2u;
    t = bitcast<vec4<f32>>(vec4<u32>(W[base + c.x], W[base + c.y], W[base + c.z], W[base + c.w]));
  }
  return select(vec4<f32>(0.0), t, cols < vec4<u32>(params.wCols));
}

// What thread t (0..255) stages at step k0 (as in matmul_tiled.wgsl): along k, row r = t / 4 of the 64
// at k = k0 + 4·(t % 4); along the row dimension, k = k0 + t / 16 at column group r = 4·(t % 16).
struct Stage {
  r: u32,
  k: u32,
}

fn stageAlongK(t: u32, k0: u32) -> Stage { return Stage(t / 4u, k0 + 4u * (t % 4u)); }
fn stageAlongRow(t: u32, k0: u32) -> Stage { return Stage(4u * (t % Q), k0 + t / Q); }

fn putAlongKA(s: Stage, k0: u32, v: vec4<f32>) {
  for (var i = 0u; i < 4u; i++) { tileA[(s.k - k0 + i) * Q + s.r / 4u][s.r % 4u] = v[i]; }
}
fn putAlongKB(s: Stage, k0: u32, v: vec4<f32>) {
  for (var i = 0u; i < 4u; i++) { tileB[(s.k - k0 + i) * Q + s.r / 4u][s.r % 4u] = v[i]; }
}

fn indexA(m: u32, k: u32) -> u32 { return m * params.lda + params.aOffset + k; }

fn stageA1(t: u32, m0: u32, k0: u32) {
  let s = stageAlongK(t, k0);
  let m = m0 + s.r;
  var v: vec4<f32>;
  for (var i = 0u; i < 4u; i++) {
    if (m < params.M && s.k + i < params.K) { v[i] = A[indexA(m, s.k + i)]; }
  }
  putAlongKA(s, k0, v);
}

// vec4 loads along k (4 | lda and aOffset, so a group never straddles rows); a group that K cuts
// is read element by element.
fn stageA4(t: u32, m0: u32, k0: u32) {
  let s = stageAlongK(t, k0);
  let m = m0 + s.r;
  var v: vec4<f32>;
  if (m < params.M) {
    if (s.k + 4u <= params.K) {
      v = A4[indexA(m, s.k) / 4u];
    } else {
      for (var i = 0u; s.k + i < params.K; i++) {
        let e = indexA(m, s.k + i);
        v[i] = A4[e / 4u][e % 4u];
      }
    }
  }
  putAlongKA(s, k0, v);
}

// op(W)'s tile, dequantized. W columns past wCols read as 0 (w4Edge; block rows are zero-padded).
fn stageW(t: u32, n0: u32, k0: u32) {
  if (BACKWARD) {
    // W rows k (< K = wRows of this chunk) at columns n .. n + 3.
    let s = stageAlongRow(t, k0);
    let n = n0 + s.r;
    var v: vec4<f32>;
    if (s.k < params.K && n < params.N) {
      if (n + 4u <= params.N) { v = w4(s.k, n); } else { v = w4Edge(s.k, n); }
    }
    tileB[(s.k - k0) * Q + s.r / 4u] = v;
  } else {
    // W row n (< N = wRows of this chunk) at columns k .. k + 3 (K = wCols).
    let s = stageAlongK(t, k0);
    let n = n0 + s.r;
    var v: vec4<f32>;
    if (n < params.N && s.k < params.K) {
      if (s.k + 4u <= params.K) { v = w4(n, s.k); } else { v = w4Edge(n, s.k); }
    }
    putAlongKB(s, k0, v);
  }
}

fn accumulate(acc: ptr<function, array<vec4<f32>, 4>>, tx: u32, ty: u32) {
  for (var kk = 0u; kk < TK; kk++) {
    let a = tileA[kk * Q + ty];
    let b = tileB[kk * Q + tx];
    (*acc)[0] = fma(vec4<f32>(a.x), b, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(a.y), b, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(a.z), b, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(a.w), b, (*acc)[3]);
  }
}

fn store(acc: array<vec4<f32>, 4>, m0: u32, n0: u32) {
  for (var i = 0u; i < 4u; i++) {
    let row = m0 + i;
    if (row >= params.M) { return; }
    for (var j = 0u; j < 4u; j++) {
      let col = n0 + j;
      if (col >= params.N) { break; }
      let idx = row * params.ldc + params.cOffset + col;
      var value = params.alpha * acc[i][j];
      // beta == 0 must not read C: it may hold garbage (NaN) from a pooled buffer.
      if (params.beta != 0.0) { value += params.beta * C[idx]; }
      C[idx] = value;
    }
  }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < params.K; k0 += TK) {
    stageA4(t, m0, k0);
    stageW(t, n0, k0);
    workgroupBarrier();
    accumulate(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  store(acc, m0 + 4u * lid.y, n0 + 4u * lid.x);
}

@compute @workgroup_size(16, 16)
fn main_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
               @builtin(local_invocation_index) t: u32) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < params.K; k0 += TK) {
    stageA1(t, m0, k0);
    stageW(t, n0, k0);
    workgroupBarrier();
    accumulate(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  store(acc, m0 + 4u * lid.y, n0 + 4u * lid.x);
}
