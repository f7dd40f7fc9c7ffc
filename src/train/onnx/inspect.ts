/**
 * Checks an `.onnx` file before a runtime sees it, so the user gets a clear reason instead of a
 * runtime's internal message: it must parse as an ONNX model (not corrupted or truncated), have the
 * detector's inputs and outputs (input_ids, attention_mask → logits, probability), and every external
 * data file it names must be there and long enough.
 */
import { VulnLabError } from '../../shared/errors.ts';
import { DETECTOR_FORMAT, DETECTOR_METADATA_KEY, type DetectorMetadata } from './export.ts';
import { INPUT_NAMES, OUTPUT_NAMES } from './graph.ts';
import { DATA_TYPE_NAMES, DataType, onnx, toNumber, type OnnxTypes } from './proto.ts';

export type OnnxDetectorProblem =
  'corrupted' | 'not-a-detector' | 'missing-external-data' | 'runtime-rejected';

export class OnnxDetectorError extends VulnLabError {
  constructor(
    readonly problem: OnnxDetectorProblem,
    message: string,
    hint: string,
  ) {
    super('bad-input', message, hint);
  }
}

export interface OnnxDetectorInfo {
  /** The lab's description, when the model was exported by VulnLab. */
  metadata: DetectorMetadata | null;
  producer: string;
  opsets: Record<string, number>;
  /** External data files the model reads: the bytes it needs from each (max offset + length). */
  externalData: { location: string; bytesNeeded: number }[];
}

interface Signature {
  name: string;
  type: string;
  rank: number | null;
}

function signature(v: OnnxTypes.IValueInfoProto): Signature {
  const tensor = v.type?.tensorType;
  return {
    name: v.name ?? '',
    type: tensor ? (DATA_TYPE_NAMES[tensor.elemType ?? 0] ?? `type ${tensor.elemType}`) : 'not a tensor',
    rank: tensor?.shape?.dim ? tensor.shape.dim.length : null,
  };
}

const describe = (list: Signature[]) =>
  list.length
    ? list.map((s) => `${s.name} (${s.type}${s.rank === null ? '' : `, rank ${s.rank}`})`).join(', ')
    : 'none';

const EXPECTED: Record<string, { type: number; rank: number }> = {
  input_ids: { type: DataType.INT64, rank: 2 },
  attention_mask: { type: DataType.INT64, rank: 2 },
  logits: { type: DataType.FLOAT, rank: 2 },
  probability: { type: DataType.FLOAT, rank: 1 },
};

function fits(s: Signature, name: string): boolean {
  const e = EXPECTED[name];
  return s.type === DATA_TYPE_NAMES[e.type] && (s.rank === null || s.rank === e.rank);
}

function externalLocation(t: OnnxTypes.ITensorProto): { location: string; end: number } | null {
  if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return null;
  const field = (key: string) => t.externalData?.find((e) => e.key === key)?.value;
  const location = field('location') ?? '';
  const offset = Number(field('offset') ?? 0);
  const length = Number(field('length') ?? NaN);
  return { location, end: offset + (Number.isFinite(length) ? length : 0) };
}

/** Parses and checks an ONNX detector; throws OnnxDetectorError with what is wrong and what to do. */
export function inspectOnnxDetector(bytes: Uint8Array, fileName: string): OnnxDetectorInfo {
  let model: OnnxTypes.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new OnnxDetectorError(
      'corrupted',
      `${fileName} is not a readable ONNX model: ${(error as Error).message} (the protobuf is corrupted or truncated).`,
      'Export the detector again (npm run vulnlab -- export-onnx, or Export ONNX in the Results panel) and pick the complete .onnx file.',
    );
  }
  const graph = model.graph;
  if (!graph || toNumber(model.irVersion) <= 0 || (graph.node?.length ?? 0) === 0) {
    throw new OnnxDetectorError(
      'corrupted',
      `${fileName} does not hold an ONNX model (no IR version or an empty graph): the file is corrupted or of another kind.`,
      'Pick the model.onnx that export-onnx wrote.',
    );
  }
  const inputs = (graph.input ?? []).map(signature);
  const outputs = (graph.output ?? []).map(signature);
  const missing = [
    ...INPUT_NAMES.filter((n) => !inputs.some((s) => s.name === n && fits(s, n))),
    ...OUTPUT_NAMES.filter((n) => !outputs.some((s) => s.name === n && fits(s, n))),
  ];
  if (missing.length > 0) {
    throw new OnnxDetectorError(
      'not-a-detector',
      `${fileName} is not a VulnLab detector: it lacks ${missing.join(', ')}. Its inputs are ${describe(inputs)}; its outputs are ${describe(outputs)}.`,
      'A detector takes input_ids and attention_mask (int64 [batch, sequence]) and returns logits (float [batch, 2]) and probability (float [batch]); export one with npm run vulnlab -- export-onnx.',
    );
  }
  let metadata: DetectorMetadata | null = null;
  const raw = model.metadataProps?.find((p) => p.key === DETECTOR_METADATA_KEY)?.value;
  if (raw) {
    try {
      const parsed = JSON.parse(raw) as DetectorMetadata;
      if (parsed.format === DETECTOR_FORMAT) metadata = parsed;
    } catch {
      metadata = null; // the signature fits; the model still runs without the lab's description
    }
  }
  const needed = new Map<string, number>();
  for (const t of graph.initializer ?? []) {
    const ext = externalLocation(t);
    if (ext) needed.set(ext.location, Math.max(needed.get(ext.location) ?? 0, ext.end));
  }
  return {
    metadata,
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    opsets: Object.fromEntries(
      (model.opsetImport ?? []).map((o) => [o.domain || 'ai.onnx', toNumber(o.version)]),
    ),
    externalData: [...needed].map(([location, bytesNeeded]) => ({ location, bytesNeeded })),
  };
}

/** Every external data file the model names must be among `available` (name → size) and long enough. */
export function checkExternalData(
  info: OnnxDetectorInfo,
  fileName: string,
  available: ReadonlyMap<string, number>,
): void {
  for (const { location, bytesNeeded } of info.externalData) {
    const base = location.split(/[\\/]/).pop() ?? location;
    const size = available.get(location) ?? available.get(base);
    if (size === undefined) {
      throw new OnnxDetectorError(
        'missing-external-data',
        `${fileName} keeps its weights in the external data file ${location}, which was not given.`,
        `Pick ${location} together with ${fileName} (or the whole folder or zip that export-onnx wrote).`,
      );
    }
    if (size < bytesNeeded) {
      throw new OnnxDetectorError(
        'missing-external-data',
        `The external data file ${location} has ${size} bytes but ${fileName} reads up to byte ${bytesNeeded}: it is truncated or belongs to another export.`,
        `Copy ${location} again from the export folder.`,
      );
    }
  }
}

/** An ONNX Runtime failure while loading a detector that passed the checks above, said plainly. */
export function runtimeLoadError(error: unknown, fileName: string, runtime: string): OnnxDetectorError {
  const message = error instanceof Error ? error.message : String(error);
  return new OnnxDetectorError(
    'runtime-rejected',
    `${runtime} could not load ${fileName}: ${message}`,
    'The model needs ONNX Runtime 1.20 or later (opset 21, com.microsoft MatMulNBits/FastGelu); re-export it with the lab if it was changed.',
  );
}
