/**
 * The golden parity check of one PyTorch fixture (tests/fixtures/engine/*.json) on one kernel set:
 * build model, step and optimizer on the given context, run the forward, then `steps` AdamW steps,
 * and measure hidden states, logits, loss, grad norm, clip scale, step-0 gradients, the optimizer
 * alone on step 0 (float64 clip + AdamW on the GPU's own gradients) and the parameter updates after
 * all steps against the float64 values. Shared by tests/gpu/model.test.ts (Node, Dawn on lavapipe)
 * and the test page of tests/e2e/golden-parity.e2e.ts (Chromium, SwiftShader): no node: imports and
 * no test framework here — it returns a report and the callers assert on it.
 */
import type { GpuContext, KernelSet } from '../../src/engine/gpu/context.ts';
import { DecoderGpu } from '../../src/engine/model/decoder-gpu.ts';
import { TrainStep } from '../../src/engine/model/train-step.ts';
import type { GoldenCase } from '../../src/engine/model/golden.ts';
import { isLlamaFamily } from '../../src/engine/model/decoder.ts';
import { ModelOptimizer } from '../../src/engine/model/optimizer.ts';
import { adamwStepRef, clipGradNormRef, type ParamMap } from '../../src/engine/reference/model.ts';

// Tolerances (f32 engine vs float64 PyTorch). Measured on these fixtures: hidden/logits/loss ≤ 1e-6,
// gradients ≤ 2.2e-6 of each tensor's largest value. f32 rounding (6e-8) compounds over 2 blocks of
// layernorm, attention softmax and ~100-term dot products to ~1e-6; 10× headroom on top. A wrong
// index, mask or missing term is off by > 1e-2.
export const FORWARD_TOL = 1e-5;
export const GRAD_TOL = 2e-5;
// The Llama family's backward is longer (separate q/k/v through a column copy, rotary positions, GQA,
// SwiGLU): measured up to 4.1e-5 of the tensor's largest value (qwen2_packed_ntp_tied, the cpu set's
// matmul; 8e-6 with the gpu set's), so 1e-4: still 100× below a wrong index, mask or term.
export const FAMILY_GRAD_TOL = 1e-4;

/** The gradient tolerance of a case: GPT-BigCode's as measured on its fixtures, the Llama family's. */
export function gradTolerance(gc: GoldenCase): number {
  return isLlamaFamily(gc.config) ? FAMILY_GRAD_TOL : GRAD_TOL;
}
// After 3 AdamW steps the update (≈ lr per step and element) is compared with PyTorch's. Adam divides
// by √v per element, so an element's update carries its gradient's *relative* f32 error, which is
// large for elements whose gradient is 1e-3 of the tensor's largest (measured: 1.6e-3 of 3·lr on
// packed_cls_full). 1e-2 of 3·lr still catches a wrong decay, bias correction or clip (≥ 1e-1).
// The optimizer itself is checked tightly on step 1: float64 AdamW on the GPU's own gradients.
export const UPDATE_TOL = 1e-2;
// f32 update arithmetic: relative 1e-6 of the parameter plus eps-level terms; 1e-3 of lr.
export const STEP1_TOL = 1e-3;

/**
 * What a measured error is held to: `forward` (hidden, logits, loss: FORWARD_TOL), `grad` (norm,
 * clip scale, step-0 gradients: GRAD_TOL), `step1` (the optimizer alone, in units of lr: STEP1_TOL),
 * `update` (3 steps' updates, in units of steps·lr: UPDATE_TOL), `adam-bound` (largest |update| of the
 * elements whose true gradient is zero up to rounding, held to 1.01·steps·lr + 1e-6).
 */
export type ParityKind = 'forward' | 'grad' | 'step1' | 'update' | 'adam-bound';

/** One measured quantity; it passes when `error < tol` (a NaN error fails). */
export interface ParityError {
  quantity: string;
  kind: ParityKind;
  error: number;
  tol: number;
}

export interface GoldenParityReport {
  name: string;
  kernels: KernelSet;
  /** WebGPU validation errors caught around building, the forward and each step (none expected). */
  validationErrors: string[];
  /** The model's trainable names and the fixture's, both sorted. */
  trainable: { got: string[]; want: string[] };
  /** Which kernel variants the step's dispatches use (from their labels). */
  labels: {
    /** Forward dispatches labelled '… tiled' (the gpu set's matmul/linear). */
    tiled: number;
    /** Attention forward, dQ and dK/dV dispatch labels (3 per layer). */
    attention: string[];
    /** Of those, labelled '… flash'. */
    flash: number;
    /** Every norm dispatch label (layernorm / rmsnorm: forward, backward, their parameters' gradients). */
    layerNorms: string[];
    /** Of those, labelled '… rows' (the gpu set's shaders/layernorm_rows.wgsl, rmsnorm_rows.wgsl). */
    rows: number;
    /** Some norm dispatch computes its weights' gradients (expected when every weight is trainable). */
    dgammaDbeta: boolean;
    /** The gpu set's variants in use: some tiled, every attention dispatch flash, every layernorm rows. */
    gpuVariants: boolean;
    /** None of them in use (the cpu set). */
    cpuVariants: boolean;
  };
  /** Per optimizer step: no non-finite gradient; the fixture's clipped flag (if any) agrees with its norm. */
  steps: { nonFinite: boolean; clipped: boolean; wantClipped?: boolean }[];
  errors: ParityError[];
  ms: number;
}

/** Largest error of `actual` against a float64 reference, relative to the reference's scale (as tests/helpers/gpu.ts `compare`). */
export function closeness(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
): { maxAbs: number; maxRel: number } {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    // A NaN anywhere fails the comparison outright (a later finite diff must not hide it).
    if (Number.isNaN(diff)) return { maxAbs: NaN, maxRel: NaN };
    maxAbs = Math.max(maxAbs, diff);
  }
  return { maxAbs, maxRel: maxAbs / Math.max(scale, 1e-30) };
}

/** Logits of the rows that are not padding (ntp) or all function logits (cls). */
async function readLogits(gc: GoldenCase, step: TrainStep, ctx: GpuContext): Promise<[number[], number[]]> {
  if (gc.objective === 'cls') return [Array.from(await step.readClsLogits()), Array.from(gc.expected.logits)];
  const seg = gc.batch.segmentIds.flat();
  const V = step.model.decoder.vocab;
  const keep = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => seg[Math.floor(i / V)] >= 0);
  return [keep(await ctx.readF32(step.ntpLogits)), keep(gc.expected.logits)];
}

/**
 * Runs the golden parity check of `gc` with `kernels` (assigned to `ctx.kernels` while the model and
 * step create their dispatches, then restored) and returns what it measured. Throws only where the
 * engine throws; every model, step and optimizer buffer it made is destroyed before it returns.
 */
export async function goldenParity(
  ctx: GpuContext,
  gc: GoldenCase,
  kernels: KernelSet,
): Promise<GoldenParityReport> {
  const t0 = performance.now();
  const gradTol = gradTolerance(gc);
  const validationErrors: string[] = [];
  const errors: ParityError[] = [];
  const measure = (quantity: string, kind: ParityKind, error: number, tol: number) =>
    errors.push({ quantity, kind, error, tol });
  const scoped = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    ctx.device.pushErrorScope('validation');
    let result: T;
    try {
      result = await work();
    } finally {
      const error = await ctx.device.popErrorScope();
      if (error) validationErrors.push(`${what}: ${error.message}`);
    }
    return result;
  };

  const kernelsBefore = ctx.kernels;
  ctx.kernels = kernels; // read when the model and step create their dispatches
  let model: DecoderGpu | undefined;
  let step: TrainStep | undefined;
  let opt: ModelOptimizer | undefined;
  try {
    await scoped('build', async () => {
      model = await DecoderGpu.create(
        ctx,
        {
          config: gc.config,
          lora: gc.lora,
          mode: gc.mode,
          objective: gc.objective,
          trainable: gc.trainable,
          seed: 0,
        },
        gc.params,
      );
      step = await TrainStep.create(model, {
        packs: gc.batch.inputIds.length,
        packLength: gc.batch.inputIds[0].length,
        maxFunctions: 8,
        recompute: false,
      });
      step.setBatch(gc.batch);
      if (gc.objective === 'cls') step.setFocal(gc.focal);
    });
  } finally {
    ctx.kernels = kernelsBefore;
  }
  // Narrowed copies (assigned inside the closure above).
  const m = model!;
  const st = step!;
  try {
    const all = [...st.forwardDispatches, ...st.backwardDispatches].map((d) => d.label);
    const tiled = st.forwardDispatches.filter((d) => d.label.endsWith(' tiled')).length;
    const attention = all.filter((l) => /^attention\.(forward|backward_dq|backward_dkv) /.test(l));
    const flash = attention.filter((l) => l.endsWith(' flash')).length;
    const layerNorms = all.filter((l) => /^(layernorm|rmsnorm)/.test(l));
    const rows = layerNorms.filter((l) => l.endsWith(' rows')).length;
    const labels = {
      tiled,
      attention,
      flash,
      layerNorms,
      rows,
      dgammaDbeta: layerNorms.some((l) => /dgamma\/dbeta|dweight/.test(l)),
      gpuVariants:
        tiled > 0 &&
        attention.length > 0 &&
        flash === attention.length &&
        layerNorms.length > 0 &&
        rows === layerNorms.length,
      cpuVariants: tiled === 0 && flash === 0 && rows === 0,
    };

    opt = await ModelOptimizer.create(m, gc.optimizer);
    const trainable = { got: [...m.trainableNames].sort(), want: [...gc.expected.trainable].sort() };

    // Forward only: hidden states and logits (the ntp logits buffer turns into dlogits in the loss).
    await scoped('forward', () => ctx.run(st.forwardDispatches));
    measure(
      'hidden states',
      'forward',
      closeness(await st.readHidden(), gc.expected.lastHiddenState!).maxRel,
      FORWARD_TOL,
    );
    const [logits, wantLogits] = await readLogits(gc, st, ctx);
    measure('logits', 'forward', closeness(logits, wantLogits).maxRel, FORWARD_TOL);

    const before = new Map<string, Float32Array>();
    for (const name of m.trainableNames) before.set(name, await m.readParam(name));
    const steps: GoldenParityReport['steps'] = [];
    for (let s = 0; s < gc.optimizer.steps; s++) {
      opt.nextStep();
      await scoped(`step ${s}`, () => st.run(opt!.dispatches));
      const want = gc.expected.steps[s];
      const loss = await st.readLoss();
      measure(`step ${s} loss`, 'forward', Math.abs(loss - want.loss) / want.loss, FORWARD_TOL);
      const { norm, scale, nonFinite } = await opt.readGradNorm();
      measure(`step ${s} norm`, 'grad', Math.abs(norm - want.grad_norm) / want.grad_norm, gradTol);
      const clipped = want.grad_norm > gc.optimizer.max_grad_norm;
      steps.push({ nonFinite, clipped, wantClipped: want.clipped });
      const wantScale = clipped ? gc.optimizer.max_grad_norm / (want.grad_norm + 1e-6) : 1;
      measure(`step ${s} clip scale`, 'grad', Math.abs(scale - wantScale) / wantScale, gradTol);
      if (s === 0) {
        // Step 0 gradients (before clipping; AdamW does not touch the gradient buffers).
        const grads: ParamMap = new Map();
        for (const name of gc.expected.trainable) {
          const g = await m.readGrad(name);
          grads.set(name, Float64Array.from(g));
          measure(`step 0 grad ${name}`, 'grad', closeness(g, gc.expected.grads.get(name)!).maxRel, gradTol);
        }
        // The optimizer alone: float64 clip + AdamW on these gradients from the same parameters.
        const names = gc.expected.trainable;
        const params: ParamMap = new Map(names.map((n) => [n, Float64Array.from(before.get(n)!)]));
        clipGradNormRef(
          names.map((n) => grads.get(n)!),
          gc.optimizer.max_grad_norm,
        );
        adamwStepRef(params, grads, names, { step: 0, m: new Map(), v: new Map() }, gc.optimizer);
        for (const name of names) {
          const err = closeness(await m.readParam(name), params.get(name)!).maxAbs;
          measure(`step 1 ${name}`, 'step1', err / gc.optimizer.lr, STEP1_TOL);
        }
      }
    }
    const lr = gc.optimizer.lr;
    const bound = lr * gc.optimizer.steps;
    for (const name of gc.expected.trainable) {
      const b = before.get(name)!;
      const got = Array.from(await m.readParam(name), (v, i) => v - b[i]);
      const want = Array.from(gc.expected.paramsAfter.get(name)!, (v, i) => v - gc.params.get(name)![i]);
      // Elements whose true gradient is zero up to rounding (the key bias under multi-query
      // attention: softmax ignores a shift shared by all keys) get Adam updates of rounding noise
      // over ε, in PyTorch as here: they are only held to Adam's bound |Δ| ≤ steps·lr (+ decay).
      const g = gc.expected.grads.get(name)!;
      const gMax = g.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      let worst = 0;
      let nearZero = 0;
      let nearZeroWorst = 0;
      got.forEach((v, i) => {
        if (Math.abs(g[i]) < 1e-6 * gMax) {
          nearZero++;
          nearZeroWorst = Math.max(nearZeroWorst, Math.abs(v)); // Math.max keeps a NaN: it fails the bound
        } else worst = Math.max(worst, Math.abs(v - want[i]));
      });
      if (nearZero > 0)
        measure(
          `update ${name} (${nearZero} near-zero-gradient elements)`,
          'adam-bound',
          nearZeroWorst,
          1.01 * bound + 1e-6,
        );
      measure(`update ${name}`, 'update', worst / bound, UPDATE_TOL);
    }
    return {
      name: gc.name,
      kernels,
      validationErrors,
      trainable,
      labels,
      steps,
      errors,
      ms: performance.now() - t0,
    };
  } finally {
    opt?.destroy();
    st.destroy();
    m.destroy();
  }
}

/** The errors that fail their tolerance (NaN included): what a caller's assertion names. */
export function failures(report: GoldenParityReport): ParityError[] {
  return report.errors.filter((e) => !(e.error < e.tol));
}

/** Per kind, the measured error closest to its tolerance (largest error/tol) over the reports. */
export function worstByKind(
  reports: readonly GoldenParityReport[],
): Map<ParityKind, ParityError & { name: string; kernels: KernelSet }> {
  const worst = new Map<ParityKind, ParityError & { name: string; kernels: KernelSet }>();
  for (const r of reports)
    for (const e of r.errors) {
      const w = worst.get(e.kind);
      if (!w || !(e.error / e.tol <= w.error / w.tol))
        worst.set(e.kind, { ...e, name: r.name, kernels: r.kernels });
    }
  return worst;
}
