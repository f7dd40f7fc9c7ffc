/** What survives a reload (finished runs, selections, display settings): localStorage, quota-aware. */
import type { PersistStorage, StorageValue } from 'zustand/middleware';
import { isQuotaError } from '../errors.tsx';
import type { LabState } from './types.ts';

let storageFull: ((dropped: number) => void) | undefined;

/** Called when older runs had to be dropped to fit the quota. */
export function onStorageFull(handler: (dropped: number) => void): void {
  storageFull = handler;
}

export type Persisted = Pick<LabState, 'runs' | 'selected' | 'largeType' | 'theme'>;
let lastSaved: Persisted | undefined;

function writeItem(name: string, value: StorageValue<Persisted>): void {
  try {
    localStorage.setItem(name, JSON.stringify(value));
    return;
  } catch (error) {
    if (!isQuotaError(error)) throw error;
  }
  // Quota full: drop the oldest runs until it fits rather than losing everything.
  const runs = [...value.state.runs];
  let dropped = 0;
  while (runs.length > 0) {
    runs.shift();
    dropped++;
    try {
      localStorage.setItem(name, JSON.stringify({ ...value, state: { ...value.state, runs } }));
      break;
    } catch (error) {
      if (!isQuotaError(error)) throw error;
    }
  }
  storageFull?.(dropped);
}

/**
 * localStorage, written only when a persisted field changed (persist calls setItem on every state
 * change, and a run changes the state several times a second).
 */
export const storage: PersistStorage<Persisted> = {
  getItem(name) {
    const text = localStorage.getItem(name);
    if (!text) return null;
    try {
      return JSON.parse(text) as StorageValue<Persisted>;
    } catch {
      return null;
    }
  },
  removeItem: (name) => localStorage.removeItem(name),
  setItem(name, value) {
    const s = value.state;
    if (
      lastSaved &&
      lastSaved.runs === s.runs &&
      lastSaved.selected === s.selected &&
      lastSaved.largeType === s.largeType &&
      lastSaved.theme === s.theme
    )
      return;
    lastSaved = s;
    writeItem(name, value);
  },
};
