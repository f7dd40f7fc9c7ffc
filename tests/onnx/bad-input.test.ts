/**
 * Files that are not usable detectors are refused with a typed error (code bad-input, a hint) before
 * a runtime sees them: an ONNX model with other inputs/outputs, corrupted or truncated protobuf,
 * external data that is missing or short.
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { VulnLabError } from '../../src/engine/errors.ts';
import type { OnnxExport } from '../../src/train/onnx/export.ts';
import {
  OnnxDetectorError,
  checkExternalData,
  inspectOnnxDetector,
  runtimeLoadError,
  type OnnxDetectorProblem,
} from '../../src/train/onnx/inspect.ts';
import { DataType, onnx, valueInfo } from '../../src/train/onnx/proto.ts';
import { exportDetector, loadDemo, modelBytes, randomAdapter } from './helpers.ts';

function expectProblem(run: () => unknown, problem: OnnxDetectorProblem, message: RegExp): OnnxDetectorError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(OnnxDetectorError);
    expect(error).toBeInstanceOf(VulnLabError);
    const e = error as OnnxDetectorError;
    expect(e.problem).toBe(problem);
    expect(e.code).toBe('bad-input');
    expect(e.message).toMatch(message);
    expect(e.hint.length).toBeGreaterThan(20);
    return e;
  }
  throw new Error(`expected a ${problem} error`);
}

/** A valid ONNX model that is not a detector: Z = X + Y. */
function addModel(inputs: [string, number][], outputs: [string, number][]): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'add',
      node: [{ opType: 'Add', input: inputs.map(([n]) => n), output: outputs.map(([n]) => n) }],
      input: inputs.map(([n, t]) => valueInfo(n, t, ['n'])),
      output: outputs.map(([n, t]) => valueInfo(n, t, ['n'])),
    },
  }).finish();
}

describe('an ONNX model that is not a detector', () => {
  it('is refused, naming the inputs and outputs it has and the ones a detector needs', async () => {
    const bytes = addModel(
      [
        ['X', DataType.FLOAT],
        ['Y', DataType.FLOAT],
      ],
      [['Z', DataType.FLOAT]],
    );
    // A real model: ONNX Runtime loads it.
    const session = await ort.InferenceSession.create(bytes);
    expect(session.inputNames).toEqual(['X', 'Y']);
    await session.release();
    const e = expectProblem(
      () => inspectOnnxDetector(bytes, 'add.onnx'),
      'not-a-detector',
      /not a VulnLab detector/,
    );
    expect(e.message).toContain('input_ids');
    expect(e.message).toContain('X (float32, rank 1)');
  });

  it('is refused when the names fit but the types do not (float ids)', () => {
    const bytes = addModel(
      [
        ['input_ids', DataType.FLOAT],
        ['attention_mask', DataType.FLOAT],
      ],
      [['probability', DataType.FLOAT]],
    );
    const e = expectProblem(
      () => inspectOnnxDetector(bytes, 'wrong.onnx'),
      'not-a-detector',
      /lacks input_ids/,
    );
    expect(e.message).toContain('logits');
  });
});

describe('damaged files', () => {
  let exported: OnnxExport;
  let bytes: Uint8Array;
  beforeAll(async () => {
    const demo = await loadDemo();
    exported = exportDetector(demo.model, randomAdapter(demo.model.config, 1), 'f32');
    bytes = modelBytes(exported);
  });

  it('an intact export passes and carries its description', () => {
    const info = inspectOnnxDetector(bytes, 'model.onnx');
    expect(info.metadata?.weightFormat).toBe('f32');
    expect(info.metadata?.threshold).toBe(0.5);
    expect(info.opsets).toEqual({ 'ai.onnx': 21, 'com.microsoft': 1 });
    expect(info.externalData).toEqual([]);
  });

  it('a truncated model is reported as corrupted protobuf', () => {
    expectProblem(
      () => inspectOnnxDetector(bytes.subarray(0, Math.floor(bytes.length / 2)), 'model.onnx'),
      'corrupted',
      /corrupted or truncated/,
    );
  });

  it('bytes that are not protobuf (random, or a JSON file renamed) are reported as corrupted', () => {
    const random = new Uint8Array(4096).map((_, i) => (i * 2654435761) >>> 24);
    expectProblem(() => inspectOnnxDetector(random, 'random.onnx'), 'corrupted', /random\.onnx/);
    const json = readFileSync('public/models/demo/tokenizer.json');
    expectProblem(
      () => inspectOnnxDetector(new Uint8Array(json), 'tokenizer.onnx'),
      'corrupted',
      /tokenizer\.onnx/,
    );
  });

  it('a runtime failure on a file that passes the checks is wrapped with the file name and a hint', async () => {
    const broken = onnx.ModelProto.decode(bytes);
    broken.graph!.node![0].opType = 'NoSuchOperator';
    const encoded = onnx.ModelProto.encode(broken).finish();
    expect(() => inspectOnnxDetector(encoded, 'edited.onnx')).not.toThrow();
    const failure = await ort.InferenceSession.create(encoded).then(
      () => null,
      (error: unknown) => runtimeLoadError(error, 'edited.onnx', 'onnxruntime-node'),
    );
    expect(failure?.problem).toBe('runtime-rejected');
    expect(failure?.message).toMatch(/onnxruntime-node could not load edited\.onnx: .*NoSuchOperator/);
  });
});

describe('external data', () => {
  let info: ReturnType<typeof inspectOnnxDetector>;
  let dataSize: number;
  beforeAll(async () => {
    const demo = await loadDemo();
    const exported = exportDetector(demo.model, randomAdapter(demo.model.config, 2), 'f32', {
      maxInlineBytes: 0,
    });
    info = inspectOnnxDetector(modelBytes(exported), 'model.onnx');
    dataSize = exported.files.find((f) => f.name === 'model.onnx.data')!.size;
  });

  it('the model names its data file and how much of it it reads', () => {
    expect(info.externalData).toEqual([{ location: 'model.onnx.data', bytesNeeded: dataSize }]);
    expect(() =>
      checkExternalData(info, 'model.onnx', new Map([['model.onnx.data', dataSize]])),
    ).not.toThrow();
  });

  it('a missing data file is reported by name', () => {
    expectProblem(
      () => checkExternalData(info, 'model.onnx', new Map([['tokenizer.json', 45357]])),
      'missing-external-data',
      /external data file model\.onnx\.data, which was not given/,
    );
  });

  it('a short data file (truncated copy) is reported', () => {
    expectProblem(
      () => checkExternalData(info, 'model.onnx', new Map([['model.onnx.data', dataSize - 1]])),
      'missing-external-data',
      /truncated/,
    );
  });
});
