import { create } from 'zustand';
import { EngineClient, EngineError } from '../worker/client.ts';
import type { AdapterSummary, SelftestResult, SerializedError } from '../worker/protocol.ts';

export const PANELS = ['model', 'data', 'train', 'results', 'scan'] as const;
export type PanelId = (typeof PANELS)[number];

export type GpuStatus =
  | { state: 'probing' }
  | { state: 'ready'; adapter: AdapterSummary; selftest?: SelftestResult; selftestError?: SerializedError }
  | { state: 'unavailable'; error: SerializedError };

interface LabState {
  panel: PanelId;
  largeType: boolean;
  theme: 'system' | 'light' | 'dark';
  gpu: GpuStatus;
  setPanel(panel: PanelId): void;
  setLargeType(on: boolean): void;
  setTheme(theme: LabState['theme']): void;
  /** Asks the engine worker for its adapter, then runs the kernel self-test. */
  probeGpu(): Promise<void>;
}

let engine: EngineClient | undefined;
export function engineClient(): EngineClient {
  engine ??= new EngineClient();
  return engine;
}

function asSerialized(error: unknown): SerializedError {
  if (error instanceof EngineError) return error.detail;
  return { code: 'internal', message: String(error), hint: 'Reload the page.' };
}

export const useLab = create<LabState>()((set) => ({
  panel: 'model',
  largeType: false,
  theme: 'system',
  gpu: { state: 'probing' },
  setPanel: (panel) => set({ panel }),
  setLargeType: (largeType) => set({ largeType }),
  setTheme: (theme) => set({ theme }),
  async probeGpu() {
    set({ gpu: { state: 'probing' } });
    let adapter: AdapterSummary;
    try {
      adapter = await engineClient().request({ type: 'probe' });
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
}));
