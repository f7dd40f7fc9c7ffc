/**
 * `npm run vulnlab -- export-onnx` on Llama-family checkpoints (tests/fixtures/families/<family>: HF
 * config.json, safetensors, tokenizer): an adapter as the lab exports it (exportPeftAdapter, PEFT names,
 * LoRA on every target of the family and the embedding) → the detector; onnxruntime-node's logits
 * against the float64 reference of the loaded weights with the LoRA branch unmerged. Next-token
 * (CAUSAL_LM) adapters too: the logits are the LM head's " NO"/" YES" rows after the paper's prompt.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { LoraTarget } from '../../src/engine/model/config.ts';
import { describeDecoder, loraParamSpecs } from '../../src/engine/model/decoder.ts';
import { Rng } from '../../src/engine/random.ts';
import type { ParamMap } from '../../src/engine/reference/model.ts';
import { NodeDirModelFiles } from '../../src/io/node-files.ts';
import { configForModel } from '../../src/train/config.ts';
import { exportPeftAdapter, importPeftAdapter } from '../../src/train/export.ts';
import { codeFrame, loadRunModel } from '../../src/train/prepare.ts';
import { randomRows, referenceLogits } from './family-helpers.ts';
import { maxAbsDiff, randomAdapter, scoreWithOrtNode, tempDir } from './helpers.ts';

const run = promisify(execFile);

const CASES = [
  { family: 'llama', objective: 'cls' },
  { family: 'qwen2', objective: 'cls' },
  { family: 'starcoder2', objective: 'cls' },
  { family: 'llama', objective: 'ntp' }, // untied LM head
  { family: 'qwen2', objective: 'ntp' }, // tied: the token table's rows
] as const;

describe('vulnlab export-onnx on Llama-family checkpoints', () => {
  for (const { family, objective } of CASES) {
    it(`${family}, ${objective}: the exported detector scores as the float64 reference`, async () => {
      const modelDir = `tests/fixtures/families/${family}`;
      const { model, tokenizer } = await loadRunModel(new NodeDirModelFiles(modelDir), family);
      const d = describeDecoder(model.config);
      const lora = { r: 4, alpha: 8, dropout: 0, targets: [...d.loraTargets] as LoraTarget[] };
      const trained = randomAdapter(model.config, 61);
      if (objective === 'ntp') trained.tensors.delete(d.score);
      const shapes = new Map(loraParamSpecs(model.config, lora).map((s) => [s.name, s.shape]));
      shapes.set(d.score, [2, d.width]);
      const adapterDir = join(tempDir(`cli-${family}-${objective}`), 'adapter');
      mkdirSync(adapterDir);
      for (const file of exportPeftAdapter(
        trained.tensors,
        shapes,
        configForModel(undefined, { lora, objective }),
        family,
      )) {
        writeFileSync(join(adapterDir, file.name), file.bytes);
      }
      const out = join(tempDir(`cli-${family}-${objective}-out`), `${family}.onnx`);
      const { stdout } = await run(
        'node',
        [
          '--import',
          'tsx',
          'src/cli/main.ts',
          'export-onnx',
          '--model',
          modelDir,
          '--adapter',
          adapterDir,
          '--out',
          out,
        ],
        { timeout: 120_000 },
      );
      expect(stdout).toMatch(/f32 weights/);
      expect(stdout).toMatch(/operators: .*Cos/);
      const described = JSON.parse(readFileSync(join(out, '..', 'detector.json'), 'utf8'));
      expect(described.model.model_type).toBe(family);
      expect(described.lora).toEqual({ r: 4, alpha: 8, targets: expect.any(Array) });
      expect(described.objective).toBe(objective);
      // Code framed as the run frames it: Llama's BOS first, and the prompt for ntp.
      const frame = codeFrame(tokenizer, objective);
      expect(described.tokenizer.frame).toEqual({ before: frame.before, after: frame.after });
      expect(frame.before[0] === tokenizer.bosId).toBe(family === 'llama');
      if (frame.answers) expect(described.answers).toEqual(frame.answers);

      // The adapter as the CLI read it (PEFT names back to the lab's), unmerged, in float64.
      const adapter = await importPeftAdapter(
        readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8'),
        new Uint8Array(readFileSync(join(adapterDir, 'adapter_model.safetensors'))),
      );
      expect([...adapter.tensors.keys()].sort()).toEqual([...trained.tensors.keys()].sort());
      const params: ParamMap = new Map();
      for (const [name, v] of model.weights) params.set(name, Float64Array.from(v));
      for (const [name, v] of adapter.tensors) params.set(name, Float64Array.from(v));
      const rows = randomRows(new Rng(62), d.vocab, [1, 12, 57, 4, 30]);
      const got = (await scoreWithOrtNode(out, rows, model.padId)).map((s) => s.logits);
      const want = referenceLogits(model.config, params, lora, rows, frame.answers ?? undefined);
      const error = maxAbsDiff(got.flat(), want.flat()) / Math.max(...want.flat().map(Math.abs));
      console.log(
        `export-onnx ${family} ${objective}: max |Δlogit| / max |logit| = ${error.toExponential(2)}`,
      );
      expect(error).toBeLessThan(1e-5);
    });
  }
});
