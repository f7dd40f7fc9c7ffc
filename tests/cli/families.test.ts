/**
 * Issue 17 end to end: `vulnlab train` on the tiny Llama, Qwen2 and StarCoder2 checkpoints of
 * tests/fixtures/families/ (Hugging Face folders: config.json, safetensors, tokenizer.json) finishes
 * and writes a PEFT adapter in the family's layout (keys `base_model.model.model.layers.{i}.self_attn.
 * q_proj.lora_A.weight`, …, `base_model.model.score.weight`; target_modules the family's leaf names);
 * `eval` with that adapter reproduces the run's test scores, `scan` ranks methods with it; llama also
 * trains on the paper's next-token prompt (a CAUSAL_LM adapter) and from its GGUF copy alone; a qwen2
 * run resumed from its checkpoint ends as the run left alone.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { demoSliceJsonl } from '../helpers/demo-data.ts';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];
type Family = 'llama' | 'qwen2' | 'starcoder2';
const FAMILIES: Family[] = ['llama', 'qwen2', 'starcoder2'];
const modelDir = (family: Family) => join('tests/fixtures/families', family);

function vulnlab(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('node', [...CLI, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr: `${stderr}\n${stdout.slice(-2000)}` }));
  });
}

const root = mkdtempSync(join(tmpdir(), 'vulnlab-families-'));
const data = join(root, 'slice.jsonl');
const config = join(root, 'config.json');
const R = 4;

beforeAll(() => {
  writeFileSync(data, demoSliceJsonl(16, 8));
  writeFileSync(
    config,
    JSON.stringify({
      // eval and scan score on an f32 base (the detector's default): the runs train on one too, so that
      // eval reproduces their scores exactly. The GGUF run trains on its Q8_0 blocks.
      weightFormat: 'f32',
      lora: { r: R },
      batching: { packLength: 128, packsPerStep: 2 },
      epochs: 1,
      evalEvery: 2,
      checkpointEvery: 2,
      seed: 5,
    }),
  );
});

/** The adapter's tensors: name → shape. */
function adapterTensors(dir: string): Map<string, number[]> {
  const bytes = readFileSync(join(dir, 'adapter_model.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[] }>;
  return new Map(
    Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .map(([k, v]) => [k, v.shape]),
  );
}

/** What PEFT writes for a *ForSequenceClassification of the family with LoRA on every block linear. */
function expectedAdapter(
  family: Family,
  head: boolean,
): { modules: string[]; tensors: Map<string, number[]> } {
  const c = JSON.parse(readFileSync(join(modelDir(family), 'config.json'), 'utf8')) as Record<string, number>;
  const hd = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  const [D, I] = [c.hidden_size, c.intermediate_size];
  const q = c.num_attention_heads * hd;
  const kv = c.num_key_value_heads * hd;
  const linears: [string, number, number][] = [
    ['self_attn.q_proj', q, D],
    ['self_attn.k_proj', kv, D],
    ['self_attn.v_proj', kv, D],
    ['self_attn.o_proj', D, q],
    ...(family === 'starcoder2'
      ? ([
          ['mlp.c_fc', I, D],
          ['mlp.c_proj', D, I],
        ] as [string, number, number][])
      : ([
          ['mlp.gate_proj', I, D],
          ['mlp.up_proj', I, D],
          ['mlp.down_proj', D, I],
        ] as [string, number, number][])),
  ];
  const tensors = new Map<string, number[]>();
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const [path, out, inp] of linears) {
      tensors.set(`base_model.model.model.layers.${l}.${path}.lora_A.weight`, [R, inp]);
      tensors.set(`base_model.model.model.layers.${l}.${path}.lora_B.weight`, [out, R]);
    }
  }
  if (head) tensors.set('base_model.model.score.weight', [2, D]);
  return { modules: linears.map(([path]) => path.split('.')[1]), tensors };
}

const testRows = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('test,'));

describe.each(FAMILIES)('vulnlab CLI on the tiny %s checkpoint', (family) => {
  const out = join(root, family);

  it('train (cls, LoRA on the family’s block linears) finishes and writes a PEFT adapter in the family’s layout', async () => {
    const result = await vulnlab([
      'train',
      '--model',
      modelDir(family),
      '--data',
      data,
      '--config',
      config,
      '--out',
      out,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.steps).toBeGreaterThan(0);
    for (const p of metrics.curves.train) expect(Number.isFinite(p.loss)).toBe(true);
    expect(typeof metrics.test.roc_auc).toBe('number');
    const adapterConfig = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8'));
    const want = expectedAdapter(family, true);
    expect(adapterConfig).toMatchObject({
      peft_type: 'LORA',
      task_type: 'SEQ_CLS',
      r: R,
      target_modules: want.modules,
      modules_to_save: ['score'],
      base_model_name_or_path: modelDir(family),
    });
    expect(adapterTensors(join(out, 'adapter'))).toEqual(want.tensors);
  }, 600_000);

  it('eval with the adapter reproduces the run’s test scores', async () => {
    const evalOut = join(root, `${family}-eval`);
    const result = await vulnlab([
      'eval',
      '--model',
      modelDir(family),
      '--adapter',
      join(out, 'adapter'),
      '--data',
      join(out, 'data.jsonl'),
      '--split',
      'test',
      '--out',
      evalOut,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(testRows(join(evalOut, 'scores.csv'))).toEqual(testRows(join(out, 'scores.csv')));
  }, 600_000);
});

describe('vulnlab CLI on the Llama family: objectives, formats, resume, scan', () => {
  it('llama trains on the paper’s next-token prompt: a CAUSAL_LM adapter, without a score head, that eval reads', async () => {
    const out = join(root, 'llama-ntp');
    const result = await vulnlab([
      'train',
      '--model',
      modelDir('llama'),
      '--data',
      data,
      '--config',
      config,
      '--objective',
      'ntp',
      '--out',
      out,
    ]);
    expect(result.code, result.stderr).toBe(0);
    const adapterConfig = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8'));
    const want = expectedAdapter('llama', false);
    expect(adapterConfig).toMatchObject({
      task_type: 'CAUSAL_LM',
      modules_to_save: null,
      target_modules: want.modules,
    });
    expect(adapterTensors(join(out, 'adapter'))).toEqual(want.tensors);
    const evalOut = join(root, 'llama-ntp-eval');
    const evaluated = await vulnlab([
      'eval',
      '--model',
      modelDir('llama'),
      '--adapter',
      join(out, 'adapter'),
      '--data',
      join(out, 'data.jsonl'),
      '--split',
      'test',
      '--out',
      evalOut,
    ]);
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(testRows(join(evalOut, 'scores.csv'))).toEqual(testRows(join(out, 'scores.csv')));
  }, 600_000);

  it('llama trains from its llama.cpp Q8_0 GGUF alone (no safetensors, no config.json)', async () => {
    const dir = join(root, 'llama-gguf');
    mkdirSync(dir);
    for (const f of ['llama-q8_0.gguf', 'tokenizer.json', 'tokenizer_config.json']) {
      copyFileSync(join(modelDir('llama'), f), join(dir, f));
    }
    const out = join(root, 'llama-gguf-run');
    const result = await vulnlab([
      'train',
      '--model',
      dir,
      '--data',
      data,
      '--config',
      config,
      '--weight-format',
      'q8_0',
      '--out',
      out,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).weightFormat).toBe('q8_0');
    expect(adapterTensors(join(out, 'adapter'))).toEqual(expectedAdapter('llama', true).tensors);
  }, 600_000);

  it('a qwen2 run resumed from its last checkpoint ends as the run left alone', async () => {
    const whole = join(root, 'qwen2');
    const checkpoint = JSON.parse(readFileSync(join(whole, 'checkpoint', 'checkpoint.json'), 'utf8'));
    const reference = JSON.parse(readFileSync(join(whole, 'metrics.json'), 'utf8'));
    expect(checkpoint.step).toBeLessThanOrEqual(reference.steps);
    const resumed = join(root, 'qwen2-resumed');
    cpSync(whole, resumed, { recursive: true });
    rmSync(join(resumed, 'metrics.json'));
    const result = await vulnlab(['train', '--resume', resumed]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`resuming .* at step ${checkpoint.step}`));
    const metrics = JSON.parse(readFileSync(join(resumed, 'metrics.json'), 'utf8'));
    expect(metrics.curves).toEqual(reference.curves);
    expect(metrics.test.roc_auc).toBe(reference.test.roc_auc);
    expect(readFileSync(join(resumed, 'scores.csv'), 'utf8')).toBe(
      readFileSync(join(whole, 'scores.csv'), 'utf8'),
    );
  }, 600_000);

  it('scan with the starcoder2 adapter ranks every method of a Java file', async () => {
    const file = join(root, 'Accounts.java');
    writeFileSync(
      file,
      `public class Accounts {
    public ResultSet find(String category) throws SQLException {
        return conn.createStatement().executeQuery("SELECT * FROM a WHERE c = '" + category + "'");
    }
    public ResultSet findSafe(String category) throws SQLException {
        PreparedStatement ps = conn.prepareStatement("SELECT * FROM a WHERE c = ?");
        ps.setString(1, category);
        return ps.executeQuery();
    }
}
`,
    );
    const result = await vulnlab([
      'scan',
      '--model',
      modelDir('starcoder2'),
      '--adapter',
      join(root, 'starcoder2', 'adapter'),
      '--json',
      file,
    ]);
    const report = JSON.parse(result.stdout) as { methods: { method: string; probability: number }[] };
    expect(report.methods.map((m) => m.method).sort()).toEqual(['Accounts.find', 'Accounts.findSafe']);
    expect(report.methods.every((m) => m.probability > 0 && m.probability < 1)).toBe(true);
    expect([0, 3]).toContain(result.code);
  }, 600_000);
});
