/**
 * The train-step bench's workload (bench/train-step.bench.ts) is well formed and the tfjs peer trains on it.
 * No timings here: speed lives in `npm run bench`.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { demoTrainStepSetup } from '../../bench/train-step.bench.ts';
import { TfjsTrainStep } from '../../bench/peers/tfjs-gptbigcode.ts';

describe('train-step bench workload', () => {
  const setup = demoTrainStepSetup(true);
  const { spec } = setup;

  it('is one full pack of 5 functions, each ending in an EOS of its own segment, positions restarting', () => {
    const ids = spec.batch.input_ids[0];
    const seg = spec.batch.segment_ids[0];
    const pos = spec.batch.position_ids[0];
    expect(spec.batch.input_ids).toHaveLength(1);
    expect(ids).toHaveLength(setup.tokens);
    expect(setup.tokens).toBe(128);
    expect(spec.batch.functions).toHaveLength(5);
    for (const [s, f] of spec.batch.functions.entries()) {
      expect(seg[f.last]).toBe(s);
      expect(ids[f.last + 1]).toBe(0); // EOS
      expect(seg[f.last + 1]).toBe(s);
      expect(ids[f.last]).not.toBe(0);
    }
    for (let t = 0; t < ids.length; t++) {
      expect(pos[t]).toBe(t > 0 && seg[t] === seg[t - 1] ? pos[t - 1] + 1 : 0);
      expect(pos[t]).toBeLessThan(spec.config.n_positions);
    }
  });

  it('has every base, head and LoRA tensor with consistent shapes', () => {
    const D = spec.config.n_embd;
    const hd = D / spec.config.n_head;
    const n = (name: string) => spec.params[name].data.length;
    const shape = (name: string) => spec.params[name].shape;
    for (const [name, { shape: s, data }] of Object.entries(spec.params)) {
      expect(data.length, name).toBe(s.reduce((a, b) => a * b, 1));
    }
    expect(shape('transformer.h.0.attn.c_attn.weight')).toEqual([D + 2 * hd, D]);
    expect(shape('transformer.h.1.attn.c_attn.lora_B.weight')).toEqual([D + 2 * hd, spec.lora!.r]);
    expect(shape('transformer.h.1.mlp.c_proj.lora_A.weight')).toEqual([spec.lora!.r, spec.config.n_inner]);
    expect(n('score.weight')).toBe(2 * D);
  });

  describe('tfjs peer on it', () => {
    let peer: TfjsTrainStep | undefined;
    afterAll(() => peer?.dispose());

    it('trains LoRA + score head and the loss moves', async () => {
      peer = await TfjsTrainStep.create(spec);
      expect(peer.trainableNames).toHaveLength(spec.config.n_layer * 8 + 1);
      const first = await peer.step();
      const second = await peer.step();
      expect(Number.isFinite(first)).toBe(true);
      expect(first).toBeGreaterThan(0);
      expect(Number.isFinite(peer.lastGradNorm)).toBe(true);
      expect(second).not.toBe(first);
    });
  });
});
