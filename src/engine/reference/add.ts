/** Float64 CPU reference for shaders/add.wgsl: scaleA·A + scaleB·B (a zero factor ignores its input). */
export function addRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  { scaleA = 1, scaleB = 1 } = {},
): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) {
    out[i] = (scaleA !== 0 ? scaleA * a[i] : 0) + (scaleB !== 0 ? scaleB * b[i] : 0);
  }
  return out;
}
