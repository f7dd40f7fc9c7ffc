/**
 * The lab's store (zustand): one state, put together from its parts in store/ — the model and the
 * draft config (model.ts), the dataset (data.ts), runs and their history (runs.ts, curves.ts), the
 * demo and ablation workflows (workflows.ts) and what survives a reload (persist.ts).
 */
import { create } from 'zustand';
import { persist } from 'zustand/middleware';
import { defaultConfig } from '../train/config.ts';
import { dataSlice } from './store/data.ts';
import { handleEngineEvents } from './store/engine.ts';
import { modelSlice } from './store/model.ts';
import { onStorageFull, storage, type Persisted } from './store/persist.ts';
import { onEngineEvent, runsSlice } from './store/runs.ts';
import type { LabApi, LabState } from './store/types.ts';
import { workflowsSlice } from './store/workflows.ts';

export * from './store/types.ts';
export { asSerialized, engineClient } from './store/engine.ts';
export { chartMarkers, latestStep, shortName } from './store/curves.ts';
export { draftForModel } from './store/model.ts';
export { finishedRun, modelSourceOf } from './store/runs.ts';
export { DEMO_CONFIG } from './store/workflows.ts';

let noticeId = 1;

export const useLab = create<LabState>()(
  persist(
    (set, get) => {
      const api: LabApi = { set, get };
      return {
        panel: 'model',
        largeType: false,
        theme: 'system',
        gpu: { state: 'probing' },
        model: { status: 'none' },
        data: { status: 'none' },
        draft: defaultConfig(),
        runs: [],
        selected: [],
        notices: [],
        storageFull: false,
        saved: [],
        setPanel: (panel) => set({ panel }),
        setLargeType: (largeType) => set({ largeType }),
        setTheme: (theme) => set({ theme }),
        ...modelSlice(api),
        ...dataSlice(api),
        ...runsSlice(api),
        ...workflowsSlice(api),
        notify(kind, text, tag) {
          const id = noticeId++;
          set((s) => ({ notices: [...s.notices.slice(-4), { id, kind, text, tag }] }));
        },
        dismiss: (id) => set((s) => ({ notices: s.notices.filter((n) => n.id !== id) })),
        dismissTag: (tag) => set((s) => ({ notices: s.notices.filter((n) => n.tag !== tag) })),
      };
    },
    {
      name: 'vulnlab',
      version: 1,
      storage,
      partialize: (s): Persisted => ({
        runs: s.runs,
        selected: s.selected,
        largeType: s.largeType,
        theme: s.theme,
      }),
    },
  ),
);

handleEngineEvents((event) => onEngineEvent({ set: useLab.setState, get: useLab.getState }, event));

onStorageFull((dropped) => {
  if (useLab.getState().storageFull) return;
  queueMicrotask(() => {
    useLab.setState({ storageFull: true });
    useLab
      .getState()
      .notify(
        'warning',
        `Browser storage is full: ${dropped} older run${dropped === 1 ? '' : 's'} could not be kept after a reload. Delete runs in Results or export them first.`,
      );
  });
});
