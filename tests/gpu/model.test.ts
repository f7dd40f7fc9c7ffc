import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu/index.ts';
import { DecoderGpu } from '../../src/engine/model/decoder-gpu.ts';
import { TrainStep } from '../../src/engine/model/train-step.ts';
import { parseGoldenCase, type GoldenCase } from '../../src/engine/model/golden.ts';
import { planMemory } from '../../src/engine/model/memory-plan.ts';
import { describeDecoder, isLlamaFamily } from '../../src/engine/model/decoder.ts';
import { LLAMA_FAMILIES } from '../../src/engine/model/llama-family.ts';
import { ModelOptimizer } from '../../src/engine/model/optimizer.ts';
import { decodeWeight, encodeWeight } from '../../src/engine/quant.ts';
import { lossAndGradsRef, type ParamMap } from '../../src/engine/reference/model.ts';
import { compare, useGpu } from '../helpers/gpu.ts';
import {
  FORWARD_TOL,
  GRAD_TOL,
  goldenParity,
  gradTolerance,
  STEP1_TOL,
  UPDATE_TOL,
} from '../helpers/golden-parity.ts';

const gpu = useGpu();

const DIR = new URL('../fixtures/engine/', import.meta.url);
const cases: GoldenCase[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => parseGoldenCase(JSON.parse(readFileSync(new URL(f, DIR), 'utf8'))));

async function noValidationErrors<T>(ctx: GpuContext, work: () => Promise<T>): Promise<T> {
  ctx.device.pushErrorScope('validation');
  const result = await work();
  const error = await ctx.device.popErrorScope();
  expect(error?.message).toBeUndefined();
  return result;
}

interface BuildOptions {
  params?: ReadonlyMap<string, ArrayLike<number>>;
  weightFormat?: 'f16' | 'q8_0' | 'q4_0';
  recompute?: boolean;
  seed?: number;
  attentionHeadGroups?: number | 'auto';
}

async function build(gc: GoldenCase, o: BuildOptions = {}) {
  const { params = gc.params, weightFormat, recompute = false, seed = 0, attentionHeadGroups } = o;
  const ctx = gpu();
  return noValidationErrors(ctx, async () => {
    const model = await DecoderGpu.create(
      ctx,
      {
        config: gc.config,
        lora: gc.lora,
        mode: gc.mode,
        objective: gc.objective,
        trainable: gc.trainable,
        weightFormat,
        seed,
      },
      params,
    );
    const step = await TrainStep.create(model, {
      packs: gc.batch.inputIds.length,
      packLength: gc.batch.inputIds[0].length,
      maxFunctions: 8,
      recompute,
      attentionHeadGroups,
    });
    step.setBatch(gc.batch);
    if (gc.objective === 'cls') step.setFocal(gc.focal);
    return { ctx, model, step };
  });
}

// The first test compiles ~25 pipelines (attention and matmul variants); on a shared 2-core software
// adapter (lavapipe) that alone can take minutes.
describe(
  'GPT-BigCode and the Llama family on the GPU vs PyTorch golden fixtures',
  { timeout: 600_000 },
  () => {
    it('has every Llama family in both packing modes and both objectives', () => {
      for (const family of LLAMA_FAMILIES) {
        const own = cases.filter((c) => isLlamaFamily(c.config) && c.config.model_type === family);
        expect(new Set(own.map((c) => c.mode)), family).toEqual(new Set(['packed', 'paper']));
        expect(new Set(own.map((c) => c.objective)), family).toEqual(new Set(['cls', 'ntp']));
      }
    });

    it('has fixtures', () => {
      expect(cases.length).toBeGreaterThanOrEqual(6);
      // packed_cls_wte_mqa_gelu: LoRA on the token embedding (PEFT lora_embedding_A/B) beside two linears.
      const wte = cases.find((c) => c.lora?.targets.includes('wte'));
      expect(wte?.expected.trainable).toEqual(
        expect.arrayContaining(['transformer.wte.lora_embedding_A', 'transformer.wte.lora_embedding_B']),
      );
    });

    // Both kernel sets (matmul/linear and layernorm: the CPU-adapter set and the GPU set) against the same
    // fixtures; the check itself (tests/helpers/golden-parity.ts) also runs in Chromium (golden-parity.e2e.ts).
    for (const kernels of ['cpu', 'gpu'] as const)
      for (const gc of cases) {
        it(`${gc.name}: hidden states, logits, loss, gradients, grad norm, 3 AdamW steps (${kernels} kernels)`, async () => {
          const r = await goldenParity(gpu(), gc, kernels);
          expect(r.validationErrors).toEqual([]);
          const { labels } = r;
          expect(labels.tiled > 0, 'the tiled matmul/linear dispatches are in use').toBe(kernels === 'gpu');
          // Attention: every forward, dQ and dK/dV dispatch of the gpu set is the flash variant, none of the cpu set.
          expect(labels.attention.length).toBe(3 * describeDecoder(gc.config).blocks.length);
          expect(labels.flash, 'the flash attention dispatches are in use').toBe(
            kernels === 'gpu' ? labels.attention.length : 0,
          );
          // Every layernorm (forward, backward, dgamma/dbeta) runs the set's variant: the gpu set's
          // workgroup-per-row shaders/layernorm_rows.wgsl labels its dispatches '… rows'.
          expect(labels.layerNorms.length, 'layernorm dispatches').toBeGreaterThan(0);
          for (const label of labels.layerNorms)
            expect(label.endsWith(' rows'), label).toBe(kernels === 'gpu');
          if (gc.trainable === 'all') expect(labels.dgammaDbeta).toBe(true);
          expect(kernels === 'gpu' ? labels.gpuVariants : labels.cpuVariants).toBe(true);
          expect(r.trainable.got).toEqual(r.trainable.want);
          expect(r.steps.length).toBe(gc.optimizer.steps);
          for (const [s, st] of r.steps.entries()) {
            expect(st.nonFinite, `step ${s} non-finite`).toBe(false);
            if (st.wantClipped !== undefined) expect(st.clipped, `step ${s} clipped`).toBe(st.wantClipped);
          }
          // Forward (hidden, logits, each step's loss), step-0 gradients, norm and clip scale, the optimizer
          // alone on step 0, and the 3 steps' updates (Adam's bound for near-zero gradients), each below
          // its tolerance (FORWARD_TOL, gradTolerance: GRAD_TOL or the Llama family's, STEP1_TOL, UPDATE_TOL).
          const kinds = new Set(r.errors.map((e) => e.kind));
          for (const kind of ['forward', 'grad', 'step1', 'update'] as const)
            expect(kinds.has(kind), kind).toBe(true);
          const tol = {
            forward: FORWARD_TOL,
            grad: gradTolerance(gc),
            step1: STEP1_TOL,
            update: UPDATE_TOL,
            'adam-bound': 1.01 * gc.optimizer.lr * gc.optimizer.steps + 1e-6,
          };
          for (const e of r.errors) expect(e.error, e.quantity).toBeLessThan(tol[e.kind]);
        });
      }

    for (const name of ['packed_cls_full', 'paper_ntp_mqa_gelu']) {
      it(`recompute (gradient checkpointing) gives the same loss and gradients: ${name}`, async () => {
        const gc = cases.find((c) => c.name === name)!;
        const plain = await build(gc);
        await plain.step.run();
        const ckpt = await build(gc, { recompute: true });
        await noValidationErrors(ckpt.ctx, () => ckpt.step.run());
        // Same kernels on the same inputs in the same order: bitwise identical results.
        expect(await ckpt.step.readLoss()).toBe(await plain.step.readLoss());
        for (const n of plain.model.trainableNames) {
          expect(await ckpt.model.readGrad(n), n).toEqual(await plain.model.readGrad(n));
        }
        expect(ckpt.step.activationBytes).toBeLessThan(plain.step.activationBytes);
        for (const m of [plain, ckpt]) {
          m.step.destroy();
          m.model.destroy();
        }
      });
    }

    it('multi-query attention backward: one head group and the default grouping both match PyTorch', async () => {
      const gc = cases.find((c) => c.name === 'packed_ntp_mqa_tanh')!;
      for (const attentionHeadGroups of [1, 2, 'auto'] as const) {
        const { model, step } = await build(gc, { attentionHeadGroups });
        await step.run();
        for (const name of gc.expected.trainable) {
          const err = compare(await model.readGrad(name), gc.expected.grads.get(name)!).maxRel;
          expect(err, `${attentionHeadGroups} ${name}`).toBeLessThan(GRAD_TOL);
        }
        step.destroy();
        model.destroy();
      }
    });

    it('the memory plan matches what the model, step and optimizer allocate', async () => {
      for (const gc of [
        cases.find((c) => c.trainable === 'all')!,
        cases.find((c) => c.objective === 'ntp')!,
      ]) {
        for (const recompute of [false, true]) {
          for (const weightFormat of gc.trainable === 'all'
            ? ([undefined] as const)
            : ([undefined, 'q8_0'] as const)) {
            const { model, step } = await build(gc, { weightFormat, recompute });
            const opt = await ModelOptimizer.create(model, gc.optimizer);
            const plan = planMemory({
              config: gc.config,
              weightFormat: weightFormat ?? 'f32',
              loraRank: gc.lora?.r ?? 0,
              loraTargets: gc.lora?.targets,
              packLength: gc.batch.inputIds[0].length,
              packsPerStep: gc.batch.inputIds.length,
              recompute,
              trainable: gc.trainable,
              objective: gc.objective,
              functionsPerStep: 8,
              attentionHeadGroups: 'auto',
            });
            const what = `${gc.name} recompute=${recompute} ${weightFormat ?? 'f32'}`;
            expect(plan.weights, what).toBe(model.paramBytes);
            expect(plan.trainable, what).toBe(model.gradBytes + opt.momentBytes);
            expect(plan.activations + plan.workspace, what).toBe(step.activationBytes);
            opt.destroy();
            step.destroy();
            model.destroy();
          }
        }
      }
    });

    it('LoRA dropout: the stateless masks of each step match the float64 model, with and without recompute', async () => {
      const base = cases.find((c) => c.name === 'packed_cls_mqa_gelu') ?? cases.find((c) => c.lora)!;
      const gc: GoldenCase = { ...base, lora: { ...base.lora!, dropout: 0.25 } };
      const seed = 5;
      const plain = await build(gc, { seed });
      const ckpt = await build(gc, { recompute: true, seed });
      for (let stepIndex = 0; stepIndex < 2; stepIndex++) {
        await plain.step.run();
        await ckpt.step.run();
        const spec = { config: gc.config, lora: gc.lora, mode: gc.mode, dropout: { seed, step: stepIndex } };
        const want = lossAndGradsRef(spec, gc.params, gc.batch, { objective: 'cls', focal: gc.focal });
        const loss = await plain.step.readLoss();
        expect(Math.abs(loss - want.loss) / want.loss, `step ${stepIndex}`).toBeLessThan(FORWARD_TOL);
        expect(await ckpt.step.readLoss()).toBe(loss);
        for (const name of plain.model.trainableNames) {
          const g = await plain.model.readGrad(name);
          expect(compare(g, want.grads.get(name)!).maxRel, name).toBeLessThan(GRAD_TOL);
          expect(await ckpt.model.readGrad(name), name).toEqual(g);
        }
      }
      // Evaluation runs without dropout: the float64 model in eval mode.
      await plain.step.evaluate();
      const evalWant = lossAndGradsRef(
        { config: gc.config, lora: gc.lora, mode: gc.mode },
        gc.params,
        gc.batch,
        {
          objective: 'cls',
          focal: gc.focal,
        },
      );
      expect(Math.abs((await plain.step.readLoss()) - evalWant.loss) / evalWant.loss).toBeLessThan(
        FORWARD_TOL,
      );
      expect(plain.step.evalForwardDispatches.length).toBeLessThan(plain.step.forwardDispatches.length);
      for (const m of [plain, ckpt]) {
        m.step.destroy();
        m.model.destroy();
      }
    });

    it('finite differences of the GPU loss agree with its LoRA gradient', async () => {
      const gc = cases.find((c) => c.name === 'packed_cls_mqa_gelu') ?? cases.find((c) => c.lora)!;
      const { ctx, model, step } = await build(gc);
      await step.run();
      const loss0 = await step.readLoss();
      // The element of largest gradient in one LoRA B and one LoRA A tensor of the last block.
      for (const name of [
        'transformer.h.1.mlp.c_fc.lora_B.weight',
        'transformer.h.0.attn.c_attn.lora_A.weight',
      ]) {
        const grad = await model.readGrad(name);
        let i = 0;
        for (let k = 1; k < grad.length; k++) if (Math.abs(grad[k]) > Math.abs(grad[i])) i = k;
        const values = await model.readParam(name);
        // h = 1e-2: the f32 loss (~2, rounding ~2e-7) divided by 2h gives ~1e-5 noise; truncation
        // O(h²·f''') stays below 1e-3 of these O(0.1) gradients. Tolerance 2% of the gradient.
        const h = 1e-2;
        const lossAt = async (delta: number) => {
          const v = values.slice();
          v[i] += delta;
          model.writeParam(name, v);
          await step.evaluate();
          return step.readLoss();
        };
        const up = await lossAt(h);
        const down = await lossAt(-h);
        model.writeParam(name, values);
        const numeric = (up - down) / (2 * h);
        expect(Math.abs(grad[i])).toBeGreaterThan(1e-2);
        expect(Math.abs(numeric - grad[i]) / Math.abs(grad[i]), `${name}[${i}]`).toBeLessThan(2e-2);
      }
      await step.evaluate();
      expect(await step.readLoss()).toBeCloseTo(loss0, 6);
      step.destroy();
      model.destroy();
      void ctx;
    });

    for (const format of ['f16', 'q8_0', 'q4_0'] as const) {
      it(`${format} base weights: matches the float64 model on the dequantized weights`, async () => {
        const gc = cases.find((c) => c.name === 'paper_cls_mha_tanh') ?? cases.find((c) => c.lora)!;
        // The reference sees exactly the weights the GPU sees: encode, then decode in float64.
        const params: ParamMap = new Map();
        for (const [name, v] of gc.params) {
          const isLinear = /\.(c_attn|c_proj|c_fc)\.weight$/.test(name);
          if (!isLinear) params.set(name, v);
          else {
            const [rows, cols] = gc.shapes.get(name)!;
            params.set(
              name,
              Float64Array.from(decodeWeight(format, rows, cols, encodeWeight(format, rows, cols, v))),
            );
          }
        }
        const { model, step } = await build(gc, { params, weightFormat: format });
        await step.run();
        const spec = { config: gc.config, lora: gc.lora, mode: gc.mode };
        const want = lossAndGradsRef(spec, params, gc.batch, { objective: gc.objective, focal: gc.focal });
        expect(compare(await step.readClsLogits(), want.logits).maxRel).toBeLessThan(FORWARD_TOL);
        expect(Math.abs((await step.readLoss()) - want.loss) / want.loss).toBeLessThan(FORWARD_TOL);
        // And it really is a different model from the f32 one (rounding the weights moved the loss).
        expect(Math.abs(want.loss - gc.expected.loss)).toBeGreaterThan(format === 'f16' ? 1e-8 : 1e-6);
        for (const name of model.trainableNames) {
          expect(compare(await model.readGrad(name), want.grads.get(name)!).maxRel, name).toBeLessThan(
            GRAD_TOL,
          );
        }
        // The same weights handed over already encoded (as a GGUF loader would): the same step exactly.
        const encoded = new Map<string, Uint8Array>();
        const floats = new Map(gc.params);
        for (const [name, v] of gc.params) {
          if (!/\.(c_attn|c_proj|c_fc)\.weight$/.test(name)) continue;
          const [rows, cols] = gc.shapes.get(name)!;
          encoded.set(name, encodeWeight(format, rows, cols, v));
          floats.delete(name);
        }
        const ctx = gpu();
        const options = {
          config: gc.config,
          lora: gc.lora,
          mode: gc.mode,
          objective: gc.objective,
          trainable: gc.trainable,
        };
        const fromBytes = await DecoderGpu.create(ctx, { ...options, weightFormat: format }, floats, encoded);
        const step2 = await TrainStep.create(fromBytes, {
          packs: 2,
          packLength: gc.batch.inputIds[0].length,
          maxFunctions: 8,
        });
        step2.setBatch(gc.batch);
        step2.setFocal(gc.focal);
        await step2.run();
        expect(await step2.readLoss()).toBe(await step.readLoss());
        await expect(DecoderGpu.create(ctx, { ...options, weightFormat: format }, floats)).rejects.toThrow(
          /missing transformer.h.0.attn.c_attn.weight/,
        );
        for (const st of [step, step2]) st.destroy();
        for (const m of [model, fromBytes]) m.destroy();
      });
    }

    it('next-token objective with every weight trainable: wte gets the embedding and lm_head gradients', async () => {
      const base =
        cases.find((c) => c.name === 'packed_ntp_mqa_tanh') ?? cases.find((c) => c.objective === 'ntp')!;
      const gc: GoldenCase = { ...base, trainable: 'all' };
      const { model, step } = await build(gc);
      const spec = { config: gc.config, lora: gc.lora, mode: gc.mode };
      const want = lossAndGradsRef(spec, gc.params, gc.batch, { objective: 'ntp', focal: gc.focal });
      for (let repeat = 0; repeat < 2; repeat++) {
        // Twice: gradients are overwritten each step, never accumulated across steps.
        await step.run();
        expect(Math.abs((await step.readLoss()) - want.loss) / want.loss).toBeLessThan(FORWARD_TOL);
        for (const name of model.trainableNames) {
          expect(compare(await model.readGrad(name), want.grads.get(name)!).maxRel, name).toBeLessThan(
            GRAD_TOL,
          );
        }
      }
      expect(model.trainableNames).toContain('transformer.wte.weight');
      expect(model.trainableNames).toContain('transformer.h.0.attn.c_attn.lora_A.weight');
      step.destroy();
      model.destroy();
    });

    it('rejects a batch of the wrong shape and a quantized full finetune', async () => {
      const gc = cases[0];
      const { model, step } = await build(gc);
      expect(() => step.setBatch({ ...gc.batch, inputIds: gc.batch.inputIds.slice(0, 1) })).toThrow(
        /prepared for 2 packs/,
      );
      const bad = { ...gc.batch, inputIds: gc.batch.inputIds.map((r) => r.map(() => 999)) };
      expect(() => step.setBatch(bad)).toThrow(/token id 999/);
      const onPadding = { ...gc.batch, functions: [{ pack: 1, last: 23, label: 0, weight: 1 }] };
      expect(() => step.setBatch(onPadding)).toThrow(/ends on token 23, which is padding/);
      // Refused before anything is allocated: an activation larger than one storage binding.
      await expect(TrainStep.create(model, { packs: 50_000_000, packLength: 24 })).rejects.toThrow(
        /maxStorageBufferBindingSize/,
      );
      await expect(TrainStep.create(model, { packs: 1, packLength: 49 })).rejects.toThrow(/n_positions 48/);
      step.destroy();
      model.destroy();
      await expect(
        DecoderGpu.create(
          gpu(),
          {
            config: gc.config,
            lora: null,
            mode: 'packed',
            objective: 'cls',
            trainable: 'all',
            weightFormat: 'q4_0',
          },
          gc.params,
        ),
      ).rejects.toThrow(/Full finetuning needs f32 weights/);
    });
  },
);
