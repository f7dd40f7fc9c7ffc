// Dequantizing reads of a frozen weight W [rows, cols] stored in its own format, shared by
// shaders/matmul_weight.wgsl and matmul_weight_tiled.wgsl (`// #include "lib/dequant"`; the
// formats and the byte layout of W are described in matmul_weight.wgsl's header).
// The including shader declares:
//   override FORMAT: u32                      0 = f32, 1 = f16, 2 = q8_0, 3 = q4_0
//   W: array<u32>                             the weight's bytes
//   params.wBase, params.wRowBytes, params.wCols (u32)   row r starts at byte wBase + r · wRowBytes

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
