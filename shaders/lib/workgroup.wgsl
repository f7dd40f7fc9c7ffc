// The flat index of a workgroup in a dispatch folded over x, y and z (a dispatch is limited to
// maxComputeWorkgroupsPerDimension per dimension; foldWorkgroups in src/engine/kernels/layer-grid.ts
// spreads a long one over y and z). `// #include "lib/workgroup"`; pass the workgroup_id and
// num_workgroups builtins.
fn workgroupIndex(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + nwg.x * (wg.y + nwg.y * wg.z);
}
