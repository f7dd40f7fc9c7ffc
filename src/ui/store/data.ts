/** The imported dataset and its splits. */
import type { LabApi, LabState, ModelState } from './types.ts';
import type { RunConfig } from '../../worker/protocol.ts';
import { factsOf } from '../modelFacts.ts';
import { asSerialized, engineClient } from './engine.ts';

/** The context the quality report counts truncation against: the run's pack, within the model's. */
function previewContext(draft: RunConfig, model: ModelState): number {
  const context = factsOf(model.info?.config)?.context;
  return Math.min(draft.batching.packLength, context ?? draft.batching.packLength);
}

export function dataSlice({ set, get }: LabApi): Pick<LabState, 'importData' | 'splitData'> {
  return {
    async importData(source, name, fields, split) {
      set((s) => ({
        data: { ...s.data, status: 'loading', loading: name, progress: undefined, error: undefined },
      }));
      const { draft, model } = get();
      try {
        const info = await engineClient().request({
          type: 'importData',
          source,
          fields,
          // The default split is shown with the run's seed, as a run (and the CLI) will make it.
          split: split ?? { strategy: 'auto', seed: draft.seed },
          contextLength: previewContext(draft, model),
        });
        set({ data: { status: 'ready', name: info.name || name, info, source, fields, split } });
        return true;
      } catch (error) {
        set((s) => ({
          data: {
            ...s.data,
            status: s.data.info ? 'ready' : 'error',
            loading: undefined,
            error: asSerialized(error),
          },
        }));
        return false;
      }
    },
    async splitData(split) {
      const { draft, model } = get();
      try {
        const info = await engineClient().request({
          type: 'splitData',
          split: split ?? { strategy: 'auto', seed: draft.seed },
          contextLength: previewContext(draft, model),
        });
        set((s) => ({ data: { ...s.data, info, split, error: undefined } }));
        return true;
      } catch (error) {
        set((s) => ({ data: { ...s.data, error: asSerialized(error) } }));
        return false;
      }
    },
  };
}
