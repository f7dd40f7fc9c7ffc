/**
 * `npm run vulnlab -- export-onnx` end to end: base model + a PEFT adapter folder (the fixture, with a
 * run's vulnlab_detector.json added) → model.onnx, external data, tokenizer, detector.json, README;
 * onnxruntime-node loads the result. Bad flags exit 2.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { importPeftAdapter } from '../../src/train/export.ts';
import { inspectOnnxDetector } from '../../src/train/onnx/inspect.ts';
import { exportDetector, loadDemo, scoreWithOrtNode, tempDir } from './helpers.ts';

const run = promisify(execFile);

async function vulnlab(args: string[]) {
  try {
    const { stdout, stderr } = await run('node', ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('vulnlab export-onnx', () => {
  it('exports the demo model with an adapter folder, the run’s threshold and external data', async () => {
    const adapterDir = join(tempDir('cli-adapter'), 'adapter');
    mkdirSync(adapterDir);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
      copyFileSync(join('tests/fixtures/peft/adapter', f), join(adapterDir, f));
    }
    const settings = {
      threshold: 0.37,
      packLength: 512,
      batching: 'packed',
      truncation: 'tail',
      normalize: { stripComments: true, collapseWhitespace: false },
      baseModel: 'demo',
    };
    writeFileSync(join(adapterDir, 'vulnlab_detector.json'), JSON.stringify(settings));
    const out = join(tempDir('cli-out'), 'detector', 'vuln.onnx');
    const result = await vulnlab([
      'export-onnx',
      '--model',
      'demo',
      '--adapter',
      adapterDir,
      '--out',
      out,
      '--format',
      'int8',
      '--max-inline-bytes',
      '65536',
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/int8 weights.*weights in vuln\.onnx\.data.*threshold 0\.370/);
    expect(result.stdout).toMatch(/operators: .*DequantizeLinear/);
    const dir = join(out, '..');
    for (const f of ['vuln.onnx', 'vuln.onnx.data', 'tokenizer.json', 'detector.json', 'README.md']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    const described = JSON.parse(readFileSync(join(dir, 'detector.json'), 'utf8'));
    expect(described).toMatchObject({
      weightFormat: 'int8',
      threshold: 0.37,
      tokenizer: { maxTokens: 511, truncation: 'tail', normalize: { stripComments: true } },
      files: { model: 'vuln.onnx', externalData: 'vuln.onnx.data' },
    });
    expect(inspectOnnxDetector(new Uint8Array(readFileSync(out)), 'vuln.onnx').metadata).toEqual(described);

    // The CLI's file equals the in-process export, and onnxruntime-node scores with it.
    const demo = await loadDemo();
    const adapter = await importPeftAdapter(
      readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8'),
      new Uint8Array(readFileSync(join(adapterDir, 'adapter_model.safetensors'))),
    );
    const inProcess = exportDetector(demo.model, adapter, 'int8', {
      maxInlineBytes: 65536,
      modelFile: 'vuln.onnx',
    });
    const data = inProcess.files.find((f) => f.name === 'vuln.onnx.data')!;
    expect(readFileSync(join(dir, 'vuln.onnx.data')).equals(Buffer.concat(data.chunks))).toBe(true);
    const [score] = await scoreWithOrtNode(out, [[5, 6, 7, 8]], demo.model.padId);
    // a probability (the fixture adapter's random head may saturate on the demo model: 1 is fine, NaN is not)
    expect(Number.isFinite(score.probability)).toBe(true);
    expect(score.probability).toBeGreaterThanOrEqual(0);
    expect(score.probability).toBeLessThanOrEqual(1);
  });

  it('rejects an unknown weight format with exit code 2', async () => {
    const result = await vulnlab([
      'export-onnx',
      '--adapter',
      'tests/fixtures/peft/adapter',
      '--out',
      join(tempDir('cli-bad'), 'm.onnx'),
      '--format',
      'int3',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--format must be one of f32, f16, int8, int4/);
  });
});
