import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { numel } from '../../src/engine/model/config.ts';
import {
  baseParamSpecs,
  describeDecoder,
  loraParamSpecs,
  type ModelConfig,
} from '../../src/engine/model/decoder.ts';
import { Rng, randomArray } from '../../src/engine/random.ts';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { importPeftAdapter, type ImportedAdapter } from '../../src/train/export.ts';
import {
  exportOnnxDetector,
  readTokenizerFiles,
  type DetectorAdapter,
  type DetectorSource,
  type OnnxExport,
  type OnnxExportOptions,
} from '../../src/train/onnx/export.ts';
import {
  scoreWithSession,
  type DetectorScore,
  type OrtTensorConstructor,
} from '../../src/train/onnx/scan.ts';
import type { OnnxWeightFormat } from '../../src/train/onnx/weights.ts';
import { loadRunModel, type PreparedModel } from '../../src/train/prepare.ts';

export const DEMO_DIR = 'public/models/demo';
const PEFT = new URL('../fixtures/peft/', import.meta.url);

export function loadDemo(): Promise<PreparedModel> {
  return loadRunModel(new NodeDirModelFiles(DEMO_DIR), 'demo');
}

/** The PEFT fixture adapter for the demo model (r 4, alpha 8, all targets; PyTorch logits in expected.json). */
export function fixtureAdapter(): Promise<ImportedAdapter> {
  return importPeftAdapter(
    readFileSync(new URL('adapter/adapter_config.json', PEFT), 'utf8'),
    new Uint8Array(readFileSync(new URL('adapter/adapter_model.safetensors', PEFT))),
  );
}

/**
 * A seeded adapter whose update is large enough to matter (B is not zero, unlike a fresh LoRA) and whose
 * score head gives probabilities spread over (0, 1), so probability comparisons are not saturated (on the
 * v2 demo model, 0.68–0.92 over the demo test split). LoRA on every target of the model's family (for
 * GPT-BigCode the four linears and wte), in loraParamSpecs order: each block linear's A [r, in] at
 * 1/√in and B [out, r] at 0.05, then the embedding's A [r, V] at 0.05 and B [D, r] at 1.
 */
export function randomAdapter(config: ModelConfig, seed: number, r = 4, alpha = 8): ImportedAdapter {
  const d = describeDecoder(config);
  const targets = [...d.loraTargets];
  const rng = new Rng(seed);
  const tensors = new Map<string, Float32Array>();
  const scales = { 'lora-A': 0, 'lora-B': 0.05, 'lora-embedding-A': 0.05, 'lora-embedding-B': 1 };
  for (const spec of loraParamSpecs(config, { r, alpha, dropout: 0, targets })) {
    const kind = spec.kind as keyof typeof scales;
    const scale = kind === 'lora-A' ? 1 / Math.sqrt(spec.shape[1]) : scales[kind];
    tensors.set(spec.name, randomArray(rng, numel(spec.shape), scale));
  }
  tensors.set('score.weight', randomArray(rng, 2 * d.width, 0.5 / Math.sqrt(d.width)));
  return {
    config: { r, alpha, dropout: 0, targets, baseModel: 'random', taskType: 'SEQ_CLS' },
    tensors,
  };
}

/** Random base weights for a config (norm weights near 1), score head excluded. */
export function randomBase(config: ModelConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const weights = new Map<string, Float32Array>();
  for (const spec of baseParamSpecs(config, false)) {
    const n = numel(spec.shape);
    if (spec.kind === 'norm' && spec.name.endsWith('.weight')) {
      weights.set(
        spec.name,
        Float32Array.from(randomArray(rng, n, 0.1), (v) => 1 + v),
      );
    } else weights.set(spec.name, randomArray(rng, n, spec.kind === 'embedding' ? 0.5 : 0.2));
  }
  return weights;
}

const TOKENIZER = [
  { name: 'tokenizer.json', bytes: new Uint8Array(readFileSync(join(DEMO_DIR, 'tokenizer.json'))) },
];

export function demoTokenizerFiles() {
  return readTokenizerFiles(new NodeDirModelFiles(DEMO_DIR));
}

export function exportDetector(
  source: DetectorSource,
  adapter: DetectorAdapter | null,
  format: OnnxWeightFormat,
  options: Partial<OnnxExportOptions> = {},
): OnnxExport {
  return exportOnnxDetector(source, adapter, {
    format,
    tokenization: { maxTokens: 1023, truncation: 'head', normalize: {}, padId: 0 },
    tokenizerFiles: TOKENIZER,
    threshold: 0.5,
    ...options,
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `vulnlab-onnx-${prefix}-`));
}

/** Writes an export's files into `dir`; returns the model's path. */
export function writeExport(exported: OnnxExport, dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const f of exported.files) writeFileSync(join(dir, f.name), Buffer.concat(f.chunks));
  return join(dir, exported.metadata.files.model);
}

export const modelBytes = (exported: OnnxExport): Uint8Array =>
  Buffer.concat(exported.files.find((f) => f.name === exported.metadata.files.model)!.chunks);

/** onnxruntime-node on the CPU: probabilities and logits of token lists, in order. */
export async function scoreWithOrtNode(
  modelPath: string,
  rows: readonly ArrayLike<number>[],
  padId = 0,
  options: ort.InferenceSession.SessionOptions = {},
): Promise<DetectorScore[]> {
  const session = await ort.InferenceSession.create(modelPath, options);
  try {
    return await scoreWithSession(session, ort.Tensor as unknown as OrtTensorConstructor, rows, { padId });
  } finally {
    await session.release();
  }
}

export function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return NaN;
    max = Math.max(max, d);
  }
  return max;
}
