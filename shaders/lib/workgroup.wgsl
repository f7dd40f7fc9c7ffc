// The flat index of a workgroup in a dispatch folded over x, y and z (a dispatch is limited to
// maxComputeWorkgroupsPerDimension per dimension; foldWorkgroups in src/engine/kernels/layer-grid.ts
// spreads a long one over y and z). `// #include "lib/workgroup"`; pass the workgroup_id and
// num_workgroups builtins.
fn workgroupIndex(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wg.x + nwg.x * (wg.y + nwg.y * wg.z);
}

// The flat index of an invocation in such a dispatch of one-dimensional workgroups of `size`
// invocations (pass local_invocation_index as `lid`): one invocation per element or row.
fn invocationIndex(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, size: u32) -> u32 {
  return workgroupIndex(wg, nwg) * size + lid;
}
