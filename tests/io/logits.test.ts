/**
 * The acceptance check on the CPU: the demo model loaded from safetensors, .bin and GGUF, in
 * every weight format, gives next-token logits equal (f32) or close (within the format's tolerance)
 * to the f32 safetensors weights, through the engine's float64 reference forward pass.
 */
import { describe, expect, it } from 'vitest';
import { decodeWeight, type WeightFormat } from '../../src/engine/quant.ts';
import { forwardRef, type ParamMap } from '../../src/engine/reference/model.ts';
import { MemoryModelFiles } from '../../src/io/files.ts';
import { loadModel, type CheckpointFormat, type LoadedModel } from '../../src/io/load.ts';
import { rowsCols } from '../../src/io/tensors.ts';
import { demoFiles } from './helpers/fixtures.ts';

const CODE =
  'public String readFile(String path) throws IOException {\n    return Files.readString(Path.of(BASE, path));\n}\n';

async function load(
  format: CheckpointFormat,
  weightFormat: WeightFormat,
): Promise<{ model: LoadedModel; params: ParamMap }> {
  const params: ParamMap = new Map();
  const model = await loadModel(new MemoryModelFiles(demoFiles('all'), 'demo'), {
    weightFormat,
    prefer: format,
    sink: async (name, shape, f, bytes) => {
      params.set(name, Float64Array.from(decodeWeight(f, ...rowsCols(shape), bytes)));
    },
  });
  return { model, params };
}

function logits(model: LoadedModel, params: ParamMap): Float64Array {
  const ids = model.tokenizer!.encode(CODE).slice(0, 48);
  const batch = {
    inputIds: [ids],
    segmentIds: [ids.map(() => 0)],
    positionIds: [ids.map((_, i) => i)],
    functions: [],
  };
  return forwardRef({ config: model.config, lora: null, mode: 'packed' }, params, batch, 'ntp').logits;
}

describe('logits of the demo model across formats', () => {
  it('match the f32 safetensors logits within each weight format’s tolerance', async () => {
    const ref = await load('safetensors', 'f32');
    const refLogits = logits(ref.model, ref.params);
    let scale = 0;
    for (const v of refLogits) scale = Math.max(scale, Math.abs(v));
    expect(scale).toBeGreaterThan(0.05);
    const err: Record<string, number> = {};
    for (const format of ['safetensors', 'bin', 'gguf'] as const) {
      for (const wf of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
        const { model, params } = await load(format, wf);
        const l = logits(model, params);
        let maxErr = 0;
        for (let i = 0; i < l.length; i++) maxErr = Math.max(maxErr, Math.abs(l[i] - refLogits[i]));
        err[`${format}/${wf}`] = maxErr / scale;
      }
    }
    // Same f32 values: identical logits.
    expect(err['safetensors/f32']).toBe(0);
    expect(err['bin/f32']).toBe(0);
    // Relative tolerances per weight format (observed: f16 3.5e-4, q8_0 8.6e-3, q4_0 0.12).
    const tol: Record<WeightFormat, number> = { f32: 0, f16: 2e-3, q8_0: 2e-2, q4_0: 0.25 };
    for (const [k, e] of Object.entries(err)) {
      const [format, wf] = k.split('/') as [CheckpointFormat, WeightFormat];
      // The GGUF stores Q8_0 linears and F16 embeddings, so its f32/f16 loads carry q8_0 error.
      const bound = format === 'gguf' ? Math.max(tol[wf], tol.q8_0) : tol[wf];
      expect(e, k).toBeLessThanOrEqual(bound);
    }
    expect(err['safetensors/f16']).toBeLessThan(err['safetensors/q8_0']);
    expect(err['safetensors/q8_0']).toBeLessThan(err['safetensors/q4_0']);
    // GGUF q8_0 passes the file's blocks through (same linears as quantizing safetensors to q8_0);
    // only its f16 embeddings differ.
    expect(Math.abs(err['gguf/q8_0'] - err['safetensors/q8_0'])).toBeLessThan(1e-3);
    console.log(
      Object.entries(err)
        .map(([k, e]) => `${k}: ${e.toExponential(2)}`)
        .join(', '),
    );
  });
});
