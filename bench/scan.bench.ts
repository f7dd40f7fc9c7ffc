/**
 * `vulnlab scan` throughput (methods/s): plain scoring, `--explain --explain-method grad` and
 * `--explain` (integrated gradients, 16 steps), through the CLI's own path — `openDetector` (src/cli/
 * detect.ts) tokenizes the methods and packs them block-diagonally (many methods per pack, as training
 * does), `Detector.score` / `Detector.explain`, then the token → line mapping scan.ts does
 * (`lineAttributions` + `topLines`). Every method is explained, as scan does when no threshold is known.
 *
 * 1. The demo model (public/models/demo) with the PEFT fixture adapter (tests/fixtures/peft/adapter,
 *    as tests/cli/scan.test.ts sets it up, no training), on the first N methods of
 *    public/demo/java-vulns.jsonl, 1024-token packs (the CLI's default for the demo's context).
 * 2. WizardCoder-1B shapes (not in --quick): width 2048, 16 heads (multi-query), MLP 8192, q4_0 frozen
 *    base, a seeded r=4 LoRA on all four targets and a random score head — but only 1 of the 24
 *    blocks (random weights for all 24 do not fit a lavapipe run), a 2048-token vocabulary (the demo
 *    tokenizer's ids; the cls head never multiplies by the embedding, so the vocabulary size only
 *    changes memory), one 256-token pack of the shortest demo methods; plain and grad only (ig is
 *    18 backward passes, ~10 min per block here). The 24-layer column is an ESTIMATE: measured time
 *    per block × 24, embedding, head and host-side work scaled too.
 */
import { readFileSync } from 'node:fs';
import { openDetector } from '../src/cli/detect.ts';
import { normalizeCode } from '../src/data/normalize.ts';
import type { DataRecord } from '../src/data/types.ts';
import type { GptBigCodeConfig } from '../src/engine/model/config.ts';
import { resolveConfig } from '../src/train/config.ts';
import { Detector } from '../src/train/detector.ts';
import {
  lineAttributions,
  topLines,
  type AttributionMethod,
  type ExampleAttribution,
} from '../src/train/explain.ts';
import type { RunExample } from '../src/train/run.ts';
import { loadDemo, randomAdapter, randomBase } from '../tests/onnx/helpers.ts';
import type { Bench, BenchRow } from './harness.ts';

const DEMO_ADAPTER = 'tests/fixtures/peft/adapter';
const IG_STEPS = 16;
const WIZARD_LAYERS_TOTAL = 24;

interface Mode {
  label: string;
  explain?: AttributionMethod;
}
const MODES: Mode[] = [
  { label: 'plain' },
  { label: '--explain-method grad', explain: 'grad' },
  { label: `--explain (ig, ${IG_STEPS} steps)`, explain: 'ig' },
];

/**
 * Milliseconds of `once`, median of `reps`, after `warmup` untimed runs (pipeline compilation; ig
 * runs grad's pipelines, so it needs none after grad).
 */
async function timed<T>(
  once: () => Promise<T>,
  reps: number,
  warmup: number,
): Promise<{ ms: number; value: T }> {
  let value = undefined as T;
  for (let w = 0; w < warmup; w++) value = await once();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    value = await once();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[times.length >> 1], value };
}

function demoRecords(): DataRecord[] {
  return readFileSync('public/demo/java-vulns.jsonl', 'utf8')
    .trim()
    .split('\n')
    .map((line) => ({ code: (JSON.parse(line) as { code: string }).code, label: 0 }));
}

/** Examples in file order while their tokens (+ separator) fit `budget`. */
function firstFitting(examples: readonly RunExample[], budget: number): RunExample[] {
  const out: RunExample[] = [];
  let used = 0;
  for (const e of examples) {
    if (used + e.tokens.length + 1 > budget) break;
    out.push(e);
    used += e.tokens.length + 1;
  }
  return out;
}

const log = (line: string) => process.stderr.write(`  scan: ${line}\n`);

/** Scan's line mapping for explained methods (scan.ts explainLines, cls adapters). */
function mapLines(
  examples: readonly RunExample[],
  records: readonly DataRecord[],
  attributions: readonly ExampleAttribution[],
  decode: (ids: readonly number[]) => string,
): number {
  const { normalize } = resolveConfig({});
  let lines = 0;
  examples.forEach((e, i) => {
    const code = records[e.exampleIndex].code;
    const found = lineAttributions({
      original: code,
      normalized: normalizeCode(code, normalize),
      normalize,
      codeTokens: e.tokens,
      attributions: attributions[i].tokens,
      decode,
    });
    lines += topLines(found, 3).length;
  });
  return lines;
}

export const bench: Bench = {
  name: 'scan',
  description:
    'vulnlab scan throughput (methods/s), block-diagonal packs: plain, --explain grad, --explain ig (16 steps); demo model and WizardCoder-1B layer shapes',
  async run({ ctx, quick }) {
    const rows: BenchRow[] = [];
    const summary: Record<string, unknown> = {};
    const reps = quick ? 1 : 2;
    const repsFor = (mode: Mode) => (mode.explain === 'ig' ? 1 : reps);
    const warmupFor = (mode: Mode) => (mode.explain === 'ig' ? 0 : 1);

    // 1. The demo model, through openDetector as `vulnlab scan --model demo --adapter DIR` runs it.
    // quick: the file's first methods that fill one 1024-token pack; full: two packs' worth.
    const demoPacks = quick ? 1 : 2;
    const records = demoRecords();
    const tokenizer = (await loadDemo()).tokenizer;
    const decode = (ids: readonly number[]) => tokenizer.decode(ids);
    const open = await openDetector(ctx, 'demo', DEMO_ADAPTER, 'bench');
    let examples: RunExample[];
    try {
      const packLength = open.detector.packLength;
      examples = firstFitting(open.examples(records), demoPacks * packLength);
      const tokens = examples.reduce((s, e) => s + e.tokens.length + 1, 0);
      for (const mode of MODES) {
        const { ms } = await timed(
          async () => {
            await open.detector.score(examples);
            if (!mode.explain) return 0;
            const attributions = await open.detector.explain(examples, {
              method: mode.explain,
              steps: IG_STEPS,
            });
            return mapLines(examples, records, attributions, decode);
          },
          repsFor(mode),
          warmupFor(mode),
        );
        log(`demo ${mode.label}: ${ms.toFixed(0)} ms`);
        rows.push({
          model: 'demo (2 × 64, fixture adapter r4)',
          mode: mode.label,
          methods: examples.length,
          tokens,
          packs: Math.ceil(tokens / packLength),
          'median ms': ms,
          'methods/s': (examples.length / ms) * 1000,
          'tokens/s': (tokens / ms) * 1000,
        });
      }
      summary.demo = {
        model:
          'public/models/demo (n_layer 2, n_embd 64, vocab 2048) + tests/fixtures/peft/adapter (r 4, all targets)',
        inputs: `the first ${examples.length} methods of public/demo/java-vulns.jsonl (as many as fit ${demoPacks} pack(s)), ${tokens} tokens with separators`,
        packLength,
        path: 'openDetector → Detector.score; explain adds Detector.explain (every method) + lineAttributions/topLines',
        reps: `${reps} after 1 warm-up (plain, grad); ig: 1, no warm-up (grad's pipelines)`,
      };
    } finally {
      open.detector.destroy();
    }

    // 2. WizardCoder-1B layer shapes, fewer layers: ~1 min on lavapipe, so not in --quick.
    if (quick) {
      summary.wizardcoder1bShapes = {
        skipped:
          'not run in --quick (one block at 1B shapes takes ~12 s plain and ~32 s with --explain grad per 256-token pack on lavapipe); run `npm run bench -- scan`',
      };
      return { rows, summary };
    }
    const layers = 1;
    const packLength = 256;
    const config: GptBigCodeConfig = {
      vocab_size: 2048,
      n_embd: 2048,
      n_layer: layers,
      n_head: 16,
      n_inner: 8192,
      n_positions: packLength,
      multi_query: true,
      activation_function: 'gelu',
      layer_norm_epsilon: 1e-5,
    };
    // Shortest demo methods first, as many as fill `packs` packs' worth of tokens.
    const budget = packLength;
    const pool = [...examples].sort((a, b) => a.tokens.length - b.tokens.length);
    const wizExamples: RunExample[] = [];
    let used = 0;
    for (const e of pool) {
      if (used + e.tokens.length + 1 > budget || e.tokens.length + 1 > packLength) break;
      wizExamples.push(e);
      used += e.tokens.length + 1;
    }
    // ig at 1B shapes is (16 + 2) backward passes of the pack: ~10 min for one block on lavapipe.
    const wizModes = MODES.filter((m) => m.explain !== 'ig');
    const t0 = performance.now();
    const detector = await Detector.create(
      ctx,
      {
        name: 'random (WizardCoder-1B layer shapes)',
        config,
        weights: randomBase(config, 7),
        separatorId: 0,
        padId: 2047,
      },
      randomAdapter(config, 2024),
      { packLength, weightFormat: 'q4_0' },
    );
    const uploadMs = performance.now() - t0;
    log(`1B shapes: ${layers} layer(s) generated and uploaded in ${uploadMs.toFixed(0)} ms`);
    try {
      for (const mode of wizModes) {
        const { ms } = await timed(
          async () => {
            await detector.score(wizExamples);
            if (!mode.explain) return 0;
            const attributions = await detector.explain(wizExamples, {
              method: mode.explain,
              steps: IG_STEPS,
            });
            return mapLines(wizExamples, records, attributions, decode);
          },
          repsFor(mode),
          warmupFor(mode),
        );
        log(`1B shapes ${mode.label}: ${ms.toFixed(0)} ms`);
        const perLayer = ms / layers;
        rows.push({
          model: `1B shapes, ${layers}/${WIZARD_LAYERS_TOTAL} layers, q4_0`,
          mode: mode.label,
          methods: wizExamples.length,
          tokens: used,
          packs: Math.ceil(used / packLength),
          'median ms': ms,
          'methods/s': (wizExamples.length / ms) * 1000,
          'tokens/s': (used / ms) * 1000,
          's/method': ms / 1000 / wizExamples.length,
          'est. s/method, 24 layers': (perLayer * WIZARD_LAYERS_TOTAL) / 1000 / wizExamples.length,
        });
      }
      summary.wizardcoder1bShapes = {
        measured: `${layers} of ${WIZARD_LAYERS_TOTAL} blocks at WizardCoder-1B shapes (n_embd 2048, n_head 16 multi-query, n_inner 8192, gelu), q4_0 frozen base, seeded LoRA r 4 on all targets, random score head; vocabulary 2048 (not 49153); ${packLength}-token packs`,
        estimate:
          "'est. methods/s, 24 layers' = methods / (measured ms ÷ layers × 24): an ESTIMATE, linear in depth; it scales the embedding, head and host-side work too (slightly pessimistic)",
        inputs: `the ${wizExamples.length} shortest demo methods that fit ${budget} tokens (demo tokenizer ids)`,
        uploadMs,
        reps,
        skipped: `ig (${IG_STEPS} steps) at 1B shapes: ${IG_STEPS + 2} backward passes per pack, ~10 min for one block on lavapipe`,
      };
    } finally {
      detector.destroy();
    }
    return { rows, summary };
  },
};
