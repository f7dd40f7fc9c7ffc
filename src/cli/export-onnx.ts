import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { describeDecoder } from '../engine/index.ts';
import { formatBytes } from '../shared/errors.ts';
import { resolveConfig } from '../train/config.ts';
import { exportOnnxDetector, readTokenizerFiles, type OnnxExportFile } from '../train/onnx/export.ts';
import { ONNX_WEIGHT_FORMATS, type OnnxWeightFormat } from '../train/onnx/weights.ts';
import { codeFrame, codeTokensPerPack, loadRunModel } from '../train/prepare.ts';
import { parseFlags, probabilityFlag, UsageError, type Command } from './flags.ts';
import { modelFiles, readAdapterDir } from './inputs.ts';

const HELP = `Usage: npm run vulnlab -- export-onnx --model demo|DIR|HUB_ID --adapter DIR --out FILE.onnx [options]

  --model demo|DIR|ID    the base model the adapter was trained on
  --adapter DIR          a PEFT adapter folder (adapter_config.json, adapter_model.safetensors), e.g. RUN/adapter;
                         SEQ_CLS (score head) or CAUSAL_LM (next-token: " YES"/" NO" after the paper's prompt)
  --out FILE.onnx        the model to write; tokenizer.json, detector.json and README.md go next to it
                         (and FILE.onnx.data when the weights exceed --max-inline-bytes)
  --format f32|f16|int8|int4
                         weights: f32 (default); f16; int8 = blocked DequantizeLinear (opset 21, block 32);
                         int4 = com.microsoft MatMulNBits (bits 4, block 32). Embeddings are f16 except with f32.
  --threshold P          decision threshold to record (default: the run's, from the adapter's
                         vulnlab_detector.json; else none)
  --max-inline-bytes N   initializer bytes above which weights move to external data (default 1.75 GiB)`;

async function writeChunks(path: string, file: OnnxExportFile): Promise<void> {
  const stream = createWriteStream(path);
  for (const chunk of file.chunks) {
    if (!stream.write(chunk)) await new Promise<void>((done) => stream.once('drain', done));
  }
  await new Promise<void>((done, fail) =>
    stream.end((error?: Error | null) => (error ? fail(error) : done())),
  );
}

export const exportOnnx: Command = {
  name: 'export-onnx',
  summary: 'export base model + adapter as an ONNX detector (LoRA merged; f32, f16, int8 or int4)',
  help: () => HELP,
  async run(args) {
    const { values } = parseFlags(
      args,
      {
        model: { type: 'string', default: 'demo' },
        adapter: { type: 'string' },
        out: { type: 'string' },
        format: { type: 'string', default: 'f32' },
        threshold: { type: 'string' },
        'max-inline-bytes': { type: 'string' },
      },
      HELP,
    );
    if (!values.adapter) throw new UsageError('--adapter DIR is required.', HELP);
    if (!values.out) throw new UsageError('--out FILE.onnx is required.', HELP);
    const format = values.format as OnnxWeightFormat;
    if (!ONNX_WEIGHT_FORMATS.includes(format)) {
      throw new UsageError(
        `--format must be one of ${ONNX_WEIGHT_FORMATS.join(', ')} (got "${values.format}").`,
        HELP,
      );
    }
    const threshold = probabilityFlag('threshold', values.threshold, HELP);
    const maxInline =
      values['max-inline-bytes'] === undefined ? undefined : Number(values['max-inline-bytes']);
    if (maxInline !== undefined && !(maxInline >= 0)) {
      throw new UsageError(
        `--max-inline-bytes must be a byte count (got "${values['max-inline-bytes']}").`,
        HELP,
      );
    }
    const usage = HELP.split('\n')[0];
    const started = performance.now();
    const { adapter, settings } = await readAdapterDir(values.adapter, usage);
    const files = modelFiles(values.model);
    const prepared = await loadRunModel(files, values.model);
    const tokenizerFiles = await readTokenizerFiles(files);
    // Code is prepared as in the adapter's run; without its settings, as a default run would.
    const defaults = resolveConfig({});
    const packLength = Math.min(
      settings?.packLength ?? 1024,
      describeDecoder(prepared.model.config).maxPositions,
    );
    // Code framed as in the run: the tokenizer's BOS, and for a next-token (CAUSAL_LM) adapter the
    // paper's prompt it answers " YES"/" NO" after.
    const frame = codeFrame(prepared.tokenizer, adapter.config.taskType === 'CAUSAL_LM' ? 'ntp' : 'cls');
    const out = resolve(values.out);
    const exported = exportOnnxDetector(prepared.model, adapter, {
      format,
      threshold: threshold ?? settings?.threshold ?? null,
      tokenization: {
        maxTokens: codeTokensPerPack(packLength, frame),
        truncation: settings?.truncation ?? defaults.truncation,
        normalize: settings?.normalize ?? defaults.normalize,
        padId: prepared.model.padId,
        frame: { before: frame.before, after: frame.after },
      },
      answers: frame.answers ?? undefined,
      tokenizerFiles,
      modelFile: basename(out),
      maxInlineBytes: maxInline,
      onProgress: (done, total) =>
        process.stdout.isTTY && process.stdout.write(`\rmerging LoRA: block ${done}/${total}`),
    });
    if (process.stdout.isTTY) process.stdout.write('\n');
    await mkdir(dirname(out), { recursive: true });
    for (const file of exported.files) await writeChunks(join(dirname(out), file.name), file);
    const m = exported.metadata;
    console.log(
      `${out}: ${m.weightFormat} weights, ${formatBytes(exported.files.filter((f) => f.name.startsWith(basename(out))).reduce((s, f) => s + f.size, 0))}${m.files.externalData ? ` (weights in ${m.files.externalData})` : ''}; opsets ai.onnx ${m.opsets['ai.onnx']}, com.microsoft ${m.opsets['com.microsoft']}; threshold ${m.threshold === null ? 'none recorded' : m.threshold.toFixed(3)}; ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    console.log(`operators: ${m.operators.join(', ')}`);
    console.log(
      `with it: ${exported.files
        .filter((f) => !f.name.startsWith(basename(out)))
        .map((f) => f.name)
        .join(', ')}`,
    );
  },
};
