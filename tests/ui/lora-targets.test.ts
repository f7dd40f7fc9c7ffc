/**
 * LoRA targets across model families in the lab: the form offers the chosen model's family's targets,
 * and a config naming another family's (the paper's GPT-BigCode default, a shared link, a finished
 * run) is carried to the model's own names with a message — on loading a model, on setting the draft
 * and on starting a run — never applied silently.
 */
import { describe, expect, it, vi } from 'vitest';

// The store persists to localStorage, which Node 20 lacks.
vi.hoisted(() => {
  const items = new Map<string, string>();
  (globalThis as { localStorage?: unknown }).localStorage ??= {
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => void items.set(k, v),
    removeItem: (k: string) => void items.delete(k),
  };
});

import { findPreset, PRESETS, type ModelConfig } from '../../src/io/presets.ts';
import { LINEAR_TARGETS } from '../../src/engine/model/config.ts';
import { LORA_TARGETS, resolveConfig, type LoraTarget } from '../../src/train/config.ts';
import { chosenModelConfig, targetsForModel, targetsOffered } from '../../src/ui/loraTargets.ts';
import { mapLoraTargets } from '../../src/train/config.ts';
import { targetChoices, toggleTarget } from '../../src/ui/panels/ConfigForm.tsx';
import { draftForModel, useLab } from '../../src/ui/store.ts';

const config = (id: string): ModelConfig => findPreset(id)!.config;
const QWEN = config('Qwen/Qwen2.5-Coder-0.5B');
const LLAMA = config('codellama/CodeLlama-7b-hf');
const SC2 = config('bigcode/starcoder2-3b');
const WIZ = config('WizardLMTeam/WizardCoder-1B-V1.0');

const SWIGLU: LoraTarget[] = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
];
const STARCODER2: LoraTarget[] = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.c_fc',
  'mlp.c_proj',
];

describe('the targets a model offers', () => {
  it('are its family’s block linears, then wte; GPT-BigCode’s without a model', () => {
    expect(targetsOffered(QWEN)).toEqual([...SWIGLU, 'wte']);
    expect(targetsOffered(LLAMA)).toEqual([...SWIGLU, 'wte']);
    expect(targetsOffered(SC2)).toEqual([...STARCODER2, 'wte']);
    expect(targetsOffered(WIZ)).toEqual(LORA_TARGETS);
    expect(targetsOffered(undefined)).toEqual(LORA_TARGETS);
  });

  it('come from the loaded model, else from the draft’s preset', () => {
    const draft = { model: 'Qwen/Qwen2.5-Coder-0.5B' };
    expect(chosenModelConfig({ model: {}, draft })).toBe(QWEN);
    expect(chosenModelConfig({ model: { info: { config: SC2 } }, draft })).toBe(SC2);
    expect(chosenModelConfig({ model: {}, draft: { model: 'someone/else' } })).toBeUndefined();
  });
});

describe('carrying targets to another family', () => {
  it('maps GPT-BigCode’s linears by role: every linear stays every linear, wte stays wte', () => {
    expect(mapLoraTargets(LINEAR_TARGETS, targetsOffered(QWEN)).targets).toEqual(SWIGLU);
    expect(mapLoraTargets([...LINEAR_TARGETS, 'wte'], targetsOffered(SC2)).targets).toEqual([
      ...STARCODER2,
      'wte',
    ]);
    // StarCoder2 has c_fc/c_proj itself: only the attention's names change.
    expect(mapLoraTargets(LINEAR_TARGETS, targetsOffered(SC2)).changes).toEqual([
      { from: 'attn.c_attn', to: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] },
      { from: 'attn.c_proj', to: ['self_attn.o_proj'] },
    ]);
    // Part of a block: the fused c_attn is q, k and v; c_fc is gate and up.
    expect(mapLoraTargets(['attn.c_attn', 'mlp.c_fc'], targetsOffered(LLAMA)).targets).toEqual([
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'mlp.gate_proj',
      'mlp.up_proj',
    ]);
    // And back: Llama's q_proj and down_proj on GPT-BigCode.
    expect(mapLoraTargets(['self_attn.q_proj', 'mlp.down_proj'], targetsOffered(WIZ)).targets).toEqual([
      'attn.c_attn',
      'mlp.c_proj',
    ]);
    // Own names pass unchanged.
    expect(mapLoraTargets(SWIGLU, targetsOffered(QWEN))).toEqual({ targets: SWIGLU, changes: [] });
  });

  it('says what it changed, naming the model and its family', () => {
    const paper = resolveConfig({});
    const { config: mapped, message } = targetsForModel(paper, QWEN, 'Qwen/Qwen2.5-Coder-0.5B');
    expect(mapped.lora.targets).toEqual(SWIGLU);
    expect(message).toContain('are not modules of Qwen/Qwen2.5-Coder-0.5B (Qwen2)');
    expect(message).toContain('attn.c_attn → self_attn.q_proj, self_attn.k_proj, self_attn.v_proj');
    expect(targetsForModel(paper, WIZ, 'w')).toEqual({ config: paper });
    expect(targetsForModel(paper, undefined, 'none')).toEqual({ config: paper });
  });
});

describe('the form’s target checkboxes', () => {
  it('offer the family’s targets, tick what the list stands for, and save the model’s own names', () => {
    const choices = targetChoices(LINEAR_TARGETS, QWEN);
    expect(choices.offered).toEqual([...SWIGLU, 'wte']);
    expect(choices.checked).toEqual(SWIGLU);
    expect(choices.changes).toHaveLength(4);
    expect(toggleTarget(choices, 'wte', true)).toEqual([...SWIGLU, 'wte']);
    expect(toggleTarget(choices, 'self_attn.k_proj', false)).toEqual(
      SWIGLU.filter((t) => t !== 'self_attn.k_proj'),
    );
    // Saved lists validate (train/config accepts every family's names).
    expect(() => resolveConfig({ lora: { targets: toggleTarget(choices, 'wte', true) } })).not.toThrow();
    // Without a model: GPT-BigCode's, as before.
    expect(targetChoices(['attn.c_attn'], undefined)).toEqual({
      offered: LORA_TARGETS,
      checked: ['attn.c_attn'],
      changes: [],
    });
  });
});

describe('the store', () => {
  it('a Llama-family preset’s own defaults name its targets; a demo draft is carried over', () => {
    const paper = draftForModel(resolveConfig({}), 'Qwen/Qwen2.5-Coder-1.5B');
    expect(paper.lora.targets).toEqual(SWIGLU);
    // After the demo (LoRA on the four linears and wte), another family keeps the embedding's adapter.
    const demo = draftForModel(resolveConfig({}), 'demo');
    const qwen = draftForModel(demo, 'Qwen/Qwen2.5-Coder-1.5B');
    const { config: carried, message } = targetsForModel(qwen, config('Qwen/Qwen2.5-Coder-1.5B'), 'q');
    expect(carried.lora.targets).toEqual([...SWIGLU, 'wte']);
    expect(message).toBeDefined();
  });

  it('setDraft carries a GPT-BigCode config to the loaded Qwen2 model and says so', () => {
    const info = {
      name: 'Qwen/Qwen2.5-Coder-0.5B',
      config: QWEN,
      parameters: 494_032_768,
      format: 'safetensors',
      tensors: 290,
      vocabSize: 151936,
    };
    useLab.setState({ model: { status: 'ready', name: info.name, info }, notices: [] });
    useLab.getState().setDraft(resolveConfig({ optimizer: { lr: 2e-4 } }));
    const { draft, notices } = useLab.getState();
    expect(draft.lora.targets).toEqual(SWIGLU);
    expect(draft.optimizer.lr).toBe(2e-4);
    expect(notices.at(-1)).toMatchObject({ kind: 'info', tag: 'lora-targets' });
    expect(notices.at(-1)!.text).toContain('(Qwen2)');
    // The model's own names: no notice.
    useLab.setState({ notices: [] });
    useLab.getState().setDraft(draft);
    expect(useLab.getState().notices).toEqual([]);
    useLab.setState({ model: { status: 'none' } });
  });

  it('every preset’s run defaults are its own family’s targets', () => {
    for (const p of PRESETS) {
      const draft = draftForModel(resolveConfig({}), p.id);
      expect(mapLoraTargets(draft.lora.targets, targetsOffered(p.config)).changes, p.id).toEqual([]);
    }
  });
});
