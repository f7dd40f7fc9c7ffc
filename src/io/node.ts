/** Node-only model IO: file handles, model directories on disk, the cache directory. */
export { NodeFileByteSource } from './node-source.ts';
export { NodeDirModelFiles } from './node-files.ts';
export { NodeDirCacheStore } from './node-cache.ts';
export { runScaleCheck, sequentialReadMBps, writeRandomCheckpoint } from './node-scale-check.ts';
export type { ScaleCheckResult } from './node-scale-check.ts';
