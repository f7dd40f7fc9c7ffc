/**
 * Workflows over the demo model and dataset: the classroom demo (one run) and the ablations (three
 * runs compared). Both load what they need first (loadDemoInputs), then train DEMO_CONFIG.
 */
import { findPreset } from '../../io/presets.ts';
import { configForModel } from '../../train/config.ts';
import type { RunConfig, SerializedError } from '../../worker/protocol.ts';
import { deepMerge } from '../share.ts';
import { asSerialized } from './engine.ts';
import type { AblationRow, LabApi, LabState } from './types.ts';

/**
 * The classroom demo: the demo model's own recipe (its preset's run defaults: LoRA with the token
 * embedding's adapter, as `train --model demo`), evaluated every 20 steps so the ROC curve is redrawn
 * as it learns. Measured on SwiftShader (scripts/measure-classroom-demo.ts, 2 cores): the first ROC
 * point after 57 s, validation ROC AUC 0.90 after 573 s, 0.95 after 817 s (step ~340 of 395).
 */
export const DEMO_CONFIG = { model: 'demo', evalEvery: 20 } as const;

const DEMO_DATASET = 'demo dataset';

/**
 * Loads the demo model and imports the demo dataset unless they are already there. `onData` runs
 * between the two; returns false (with the error, when there is one) if either failed.
 */
async function loadDemoInputs(
  { get }: LabApi,
  onData?: () => void,
): Promise<{ ok: true } | { ok: false; error?: SerializedError }> {
  if (get().model.status !== 'ready' || get().model.name !== 'demo') {
    if (!(await get().loadModel({ kind: 'demo' }, 'demo'))) return { ok: false, error: get().model.error };
  }
  onData?.();
  if (get().data.status !== 'ready' || get().data.name !== DEMO_DATASET) {
    if (!(await get().importData({ kind: 'demo' }, DEMO_DATASET)))
      return { ok: false, error: get().data.error };
  }
  return { ok: true };
}

/** The demo preset's run defaults, DEMO_CONFIG, the caller's overrides, then a variant's settings. */
function demoConfig(overrides: unknown, variant?: unknown): RunConfig {
  const own = deepMerge(deepMerge(structuredClone(DEMO_CONFIG), overrides ?? {}), variant ?? {});
  return configForModel(findPreset('demo')?.runDefaults, own);
}

const ABLATIONS: { row: Omit<AblationRow, 'status'>; variant: unknown }[] = [
  {
    row: { key: 'packed-focal', label: 'packed sequences · focal loss' },
    variant: { batching: { mode: 'packed' }, loss: { kind: 'focal' } },
  },
  {
    row: { key: 'padded-focal', label: 'padded (one function per row) · focal loss' },
    variant: { batching: { mode: 'padded' }, loss: { kind: 'focal' } },
  },
  {
    row: { key: 'packed-ce', label: 'packed sequences · cross-entropy' },
    variant: { batching: { mode: 'packed' }, loss: { kind: 'ce' } },
  },
];

export function workflowsSlice(api: LabApi): Pick<LabState, 'runDemo' | 'runAblations'> {
  const { set, get } = api;
  return {
    async runDemo(overrides) {
      set({ demo: { status: 'loading-model' }, panel: 'train' });
      const fail = (error?: SerializedError) => set({ demo: { status: 'failed', error } });
      const inputs = await loadDemoInputs(api, () => set({ demo: { status: 'loading-data' } }));
      if (!inputs.ok) return fail(inputs.error);
      let config: RunConfig;
      try {
        config = demoConfig(overrides);
      } catch (error) {
        return fail(asSerialized(error));
      }
      set({ demo: { status: 'training' }, draft: config });
      const run = await get().startRun(config, 'classroom demo · packed · focal');
      if (run) set({ demo: { status: 'done' } });
      else fail(get().live?.error);
    },
    async runAblations(overrides) {
      const rows: AblationRow[] = ABLATIONS.map(({ row }) => ({ ...row, status: 'waiting' }));
      set({ ablation: { status: 'running', rows }, panel: 'train' });
      const update = (i: number, patch: Partial<AblationRow>) =>
        set((s) =>
          s.ablation
            ? {
                ablation: {
                  ...s.ablation,
                  rows: s.ablation.rows.map((r, j) => (j === i ? { ...r, ...patch } : r)),
                },
              }
            : {},
        );
      if (!(await loadDemoInputs(api)).ok) {
        set({ ablation: { status: 'failed', rows } });
        return;
      }
      for (let i = 0; i < rows.length; i++) {
        update(i, { status: 'running' });
        const config = demoConfig(overrides, ABLATIONS[i].variant);
        const run = await get().startRun(config, `ablation · ${rows[i].label}`);
        if (!run) {
          update(i, { status: 'failed' });
          set((s) => (s.ablation ? { ablation: { ...s.ablation, status: 'failed' } } : {}));
          return;
        }
        update(i, { status: 'done', runId: run.id });
      }
      set((s) => ({
        ablation: s.ablation ? { ...s.ablation, status: 'done' } : undefined,
        selected: (s.ablation?.rows ?? []).map((r) => r.runId).filter((x): x is string => !!x),
      }));
    },
  };
}
