import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DecoderGpu } from '../../src/engine/model/decoder-gpu.ts';
import { TrainStep } from '../../src/engine/model/train-step.ts';
import type { LoraTarget } from '../../src/engine/model/config.ts';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { resolveConfig } from '../../src/train/config.ts';
import { exportPeftAdapter, importPeftAdapter } from '../../src/train/export.ts';
import { loadRunModel } from '../../src/train/prepare.ts';
import { compare, useGpu } from '../helpers/gpu.ts';

const gpu = useGpu();
const FIXTURE = new URL('../fixtures/peft/', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, FIXTURE));

interface PeftBatch {
  input_ids: number[][];
  segment_ids: number[][];
  position_ids: number[][];
  functions: { pack: number; last: number; label: 0 | 1 }[];
}

describe('PEFT adapter round trip with the PyTorch reference', () => {
  it('the engine computes the PyTorch reference logits from the exported adapter', async () => {
    const adapter = await importPeftAdapter(
      read('adapter/adapter_config.json').toString('utf8'),
      new Uint8Array(read('adapter/adapter_model.safetensors')),
    );
    expect(adapter.config).toMatchObject({ r: 4, alpha: 8, baseModel: 'demo' });
    expect(adapter.tensors.get('transformer.h.0.attn.c_attn.lora_A.weight')?.length).toBeGreaterThan(0);
    expect(adapter.tensors.has('score.weight')).toBe(true);

    const prepared = await loadRunModel(new NodeDirModelFiles('public/models/demo'), 'demo');
    const values = new Map<string, ArrayLike<number>>(prepared.model.weights);
    for (const [name, tensor] of adapter.tensors) values.set(name, tensor);
    const lora = {
      r: adapter.config.r,
      alpha: adapter.config.alpha,
      dropout: 0,
      targets: adapter.config.targets as LoraTarget[],
    };
    const ctx = gpu();
    const model = await DecoderGpu.create(
      ctx,
      { config: prepared.model.config, lora, mode: 'packed', objective: 'cls', trainable: 'lora' },
      values,
    );
    const batch = JSON.parse(read('batch.json').toString('utf8')) as PeftBatch;
    const step = await TrainStep.create(model, {
      packs: batch.input_ids.length,
      packLength: batch.input_ids[0].length,
      maxFunctions: batch.functions.length,
    });
    try {
      step.setBatch({
        inputIds: batch.input_ids,
        segmentIds: batch.segment_ids,
        positionIds: batch.position_ids,
        functions: batch.functions.map((f) => ({ ...f, weight: 1 })),
      });
      await step.evaluate();
      const logits = await step.readClsLogits();
      const expected = (
        JSON.parse(read('expected.json').toString('utf8')) as { logits: number[][] }
      ).logits.flat();
      // f32 engine vs float64 reference through 2 blocks of 256-token packs: ~1e-6 relative (see
      // tests/gpu/model.test.ts); a wrong key name, transpose or scaling is off by > 1e-1.
      expect(compare(logits, expected).maxRel).toBeLessThan(1e-4);
    } finally {
      step.destroy();
      model.destroy();
    }
  });

  it('export after import writes the same bytes', async () => {
    const configJson = read('adapter/adapter_config.json').toString('utf8');
    const safetensors = new Uint8Array(read('adapter/adapter_model.safetensors'));
    const adapter = await importPeftAdapter(configJson, safetensors);
    const shapes = new Map([...adapter.tensors].map(([name, t]) => [name, shapeOf(name, t.length)]));
    const config = resolveConfig({ lora: { r: adapter.config.r, alpha: adapter.config.alpha, dropout: 0 } });
    const files = exportPeftAdapter(adapter.tensors, shapes, config, adapter.config.baseModel);
    expect(Buffer.from(files.find((f) => f.name === 'adapter_model.safetensors')!.bytes)).toEqual(
      Buffer.from(safetensors),
    );
    expect(JSON.parse(new TextDecoder().decode(files[0].bytes))).toEqual(JSON.parse(configJson));
  });

  it('refuses what is not a LoRA adapter, saying why', async () => {
    await expect(importPeftAdapter('{"peft_type": "PREFIX_TUNING"}', new Uint8Array())).rejects.toThrow(
      /not "LORA"/,
    );
    await expect(importPeftAdapter('not json', new Uint8Array())).rejects.toThrow(/not JSON/);
    await expect(importPeftAdapter('{"peft_type": "LORA"}', new Uint8Array(4))).rejects.toThrow();
  });
});

/** Shapes of the demo adapter's tensors from their names (r = 4, D = 64, inner 256, c_attn 96). */
function shapeOf(name: string, length: number): number[] {
  if (name === 'score.weight') return [2, length / 2];
  return name.includes('lora_A') ? [4, length / 4] : [length / 4, 4];
}
