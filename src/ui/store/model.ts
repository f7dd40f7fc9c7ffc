/** The GPU, the model (and the draft config layered on it), and an imported adapter. */
import { configForModel, FIELDS, getField, withField } from '../../train/config.ts';
import { findPreset } from '../../io/presets.ts';
import type { AdapterSummary, RunConfig } from '../../worker/protocol.ts';
import { targetsForModel } from '../loraTargets.ts';
import { configDiff } from '../share.ts';
import { formatValue } from '../format.ts';
import { kernelsFromUrl } from '../kernels.ts';
import { asSerialized, engineClient } from './engine.ts';
import { shortName } from './curves.ts';
import type { LabApi, LabState } from './types.ts';

/**
 * The draft for a newly loaded model, layered as the CLI layers a config: the paper's defaults, then
 * the model preset's own (the demo model wants a higher learning rate), then what the user changed
 * from the paper's defaults — so the same settings give the same run in the lab and on the CLI.
 */
export function draftForModel(draft: RunConfig, model: string): RunConfig {
  const defaults = findPreset(model)?.runDefaults;
  const config = { ...draft, model };
  if (!defaults) return config;
  try {
    return configForModel(defaults, configDiff(config));
  } catch {
    return config;
  }
}

export function modelSlice({
  set,
  get,
}: LabApi): Pick<
  LabState,
  'probeGpu' | 'loadModel' | 'setDraft' | 'setDraftField' | 'importAdapter' | 'clearAdapter'
> {
  return {
    async probeGpu() {
      set({ gpu: { state: 'probing' } });
      let adapter: AdapterSummary;
      try {
        // `?kernels=cpu|gpu` in the lab's URL overrides the adapter's default kernel set.
        const kernels = typeof location === 'undefined' ? undefined : kernelsFromUrl(location.search);
        adapter = await engineClient().request({ type: 'probe', kernels });
      } catch (error) {
        set({ gpu: { state: 'unavailable', error: asSerialized(error) } });
        return;
      }
      set({ gpu: { state: 'ready', adapter } });
      try {
        const selftest = await engineClient().request({ type: 'selftest' });
        set({ gpu: { state: 'ready', adapter, selftest } });
      } catch (error) {
        set({ gpu: { state: 'ready', adapter, selftestError: asSerialized(error) } });
      }
    },
    async loadModel(source, name) {
      // The worker keeps its current model until a new one has loaded, and so does the page.
      set((s) => ({
        model: { ...s.model, status: 'loading', loading: name, progress: undefined, error: undefined },
      }));
      try {
        const info = await engineClient().request({ type: 'loadModel', source });
        const loaded = source.kind === 'files' ? info.name : name;
        const before = get().draft;
        // LoRA targets named for another family (the paper's GPT-BigCode default, a shared link) are
        // carried to this model's own, and the lab says so.
        const { config: draft, message: targets } = targetsForModel(
          draftForModel(before, loaded),
          info.config,
          loaded,
        );
        set((s) => ({
          model: { status: 'ready', name: loaded, info, progress: s.model.progress },
          draft,
          // The worker dropped an imported adapter: it was set up on the previous model.
          importedAdapter: undefined,
        }));
        const changed = FIELDS.filter(
          (f) =>
            f.path !== 'model' &&
            (f.path !== 'lora.targets' || !targets) &&
            JSON.stringify(getField(draft, f.path)) !== JSON.stringify(getField(before, f.path)),
        );
        if (changed.length) {
          get().notify(
            'info',
            `${loaded}'s own defaults are set in the Train panel (as on the command line): ${changed
              .map((f) => `${shortName(f.path)} ${formatValue(getField(draft, f.path))}`)
              .join(', ')}.`,
          );
        }
        if (targets) get().notify('info', targets, 'lora-targets');
        return true;
      } catch (error) {
        set((s) => ({
          model: {
            ...s.model,
            status: s.model.info ? 'ready' : 'error',
            loading: undefined,
            error: asSerialized(error),
          },
        }));
        return false;
      }
    },
    setDraft(config) {
      // A config from a shared link or another run may name another family's LoRA targets.
      const { model } = get();
      const { config: draft, message } = targetsForModel(
        config,
        model.info?.config,
        model.name ?? config.model,
      );
      set({ draft });
      if (message) get().notify('info', message, 'lora-targets');
    },
    setDraftField(path, value) {
      set((s) => ({ draft: withField(s.draft, path, value) }));
    },
    async importAdapter(files) {
      try {
        const importedAdapter = await engineClient().request({ type: 'importAdapter', files });
        set({ importedAdapter });
        return undefined;
      } catch (error) {
        return asSerialized(error);
      }
    },
    async clearAdapter() {
      await engineClient()
        .request({ type: 'clearAdapter' })
        .catch(() => undefined);
      set({ importedAdapter: undefined });
    },
  };
}
