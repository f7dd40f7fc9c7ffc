/**
 * The page's bundle holds no engine: model presets and memory planning reach it as plain data and
 * arithmetic (src/io/presets.ts, src/engine/model/memory-plan.ts, src/engine/model/sizes.ts), while
 * GPU code, kernels, shaders, the GPU model and the loaders stay in the engine worker's chunk.
 *
 * Builds the app as `vite build` does (vite.config.ts, production), in memory, and reads the modules
 * Rolldown put into each page chunk. The lint rule in eslint.config.js stops direct imports from the
 * UI; this catches the ones that arrive through other modules.
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { build, type Rolldown } from 'vite';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Modules the page must not bundle, as paths from the repository root. */
const FORBIDDEN: readonly RegExp[] = [
  /^src\/engine\/(gpu|kernels|reference)\//,
  /^src\/engine\/index\.ts$/,
  /^src\/engine\/model\/(decoder-gpu|train-step|optimizer|golden|attribution)\.ts$/,
  /^shaders\//,
  /\.wgsl($|\?)/,
  /^src\/io\/(load|load-gpu|gguf|pickle|zip|torch-bin|tokenizer|safetensors|hub)\.ts$/,
  /^src\/(train\/(?!config\.ts$)|worker\/(?!(client|onnx-scan-client)\.ts$))/,
  /node_modules\/(@huggingface\/(gguf|tasks|tokenizers|hub)|onnxruntime-web)\//,
];

/** Text only WGSL has: entry-point and storage attributes. */
const WGSL = /@compute|@workgroup_size|var<storage/;

const relative = (id: string): string => (id.startsWith(root) ? id.slice(root.length) : id);

function forbiddenModules(moduleIds: readonly string[]): string[] {
  return moduleIds.map(relative).filter((id) => FORBIDDEN.some((re) => re.test(id)));
}

async function buildApp(): Promise<(Rolldown.OutputChunk | Rolldown.OutputAsset)[]> {
  // Vitest sets NODE_ENV=test, which Vite would inline into React: build as `vite build` does.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    const result = await build({
      root,
      configFile: `${root}vite.config.ts`,
      mode: 'production',
      logLevel: 'silent',
      build: { write: false, emptyOutDir: false },
    });
    const outputs = Array.isArray(result) ? result : [result];
    return outputs.flatMap((o) => ('output' in o ? o.output : []));
  } finally {
    process.env.NODE_ENV = nodeEnv;
  }
}

describe('the built page', () => {
  it('holds no GPU code, kernel, shader, GPU model or loader; the engine worker keeps them', async () => {
    const output = await buildApp();
    const chunks = output.filter((o): o is Rolldown.OutputChunk => o.type === 'chunk');
    const main = chunks.find((c) => c.isEntry && /^assets\/index-[\w-]+\.js$/.test(c.fileName));
    expect(main, 'the page entry chunk assets/index-*.js').toBeDefined();
    // Not vacuous: Rolldown reports the modules of each chunk.
    expect(main!.moduleIds.map(relative)).toEqual(
      expect.arrayContaining(['src/main.tsx', 'src/io/presets.ts']),
    );
    console.info(`main chunk ${main!.fileName}: ${Buffer.byteLength(main!.code)} bytes`);

    for (const chunk of chunks) {
      expect(forbiddenModules(chunk.moduleIds), `engine modules in ${chunk.fileName}`).toEqual([]);
      expect(chunk.code, `WGSL in ${chunk.fileName}`).not.toMatch(WGSL);
    }

    // The worker is built on its own and arrives here as an asset: the shaders and kernels are there.
    const worker = output.find((o) => /^assets\/engine\.worker-[\w-]+\.js$/.test(o.fileName));
    expect(worker?.type).toBe('asset');
    const workerCode = String((worker as Rolldown.OutputAsset).source);
    expect(workerCode).toMatch(WGSL);
    expect(workerCode).toMatch(/attention\.backward_dq/); // a kernel's dispatch label
  });

  it('names the engine modules it finds', () => {
    expect(
      forbiddenModules([
        `${root}src/ui/App.tsx`,
        `${root}src/io/presets.ts`,
        `${root}src/engine/model/memory-plan.ts`,
        `${root}src/engine/model/sizes.ts`,
        `${root}src/train/config.ts`,
        `${root}src/worker/client.ts`,
        `${root}src/engine/kernels/attention.ts`,
        `${root}src/engine/model/decoder-gpu.ts`,
        `${root}shaders/attention.wgsl?raw`,
        `${root}src/io/load.ts`,
        `${root}src/train/run.ts`,
        `${root}node_modules/@huggingface/tasks/dist/index.js`,
      ]),
    ).toEqual([
      'src/engine/kernels/attention.ts',
      'src/engine/model/decoder-gpu.ts',
      'shaders/attention.wgsl?raw',
      'src/io/load.ts',
      'src/train/run.ts',
      'node_modules/@huggingface/tasks/dist/index.js',
    ]);
  });
});
