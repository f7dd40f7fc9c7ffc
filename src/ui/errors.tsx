import type { ReactNode } from 'react';
import type { SerializedError } from '../worker/protocol.ts';

/** A title in plain words for each error code the engine can send. */
const TITLES: Record<SerializedError['code'], string> = {
  'webgpu-unavailable': 'No WebGPU in this browser',
  unsupported: 'This GPU lacks something this step needs',
  'device-lost': 'The GPU was reset',
  'out-of-memory': 'Out of GPU memory',
  'gpu-validation': 'The GPU rejected a command',
  'limit-exceeded': 'This GPU adapter is too small for the chosen model',
  'bad-input': 'The input could not be used',
  'storage-full': 'Browser storage is full',
  'storage-unavailable': 'Browser storage is not available',
  internal: 'Something went wrong inside VulnLab',
};

export function errorTitle(error: SerializedError): string {
  return TITLES[error.code] ?? TITLES.internal;
}

/** An error with its title, the engine's message and hint, and actions that lead on. */
export function ErrorBox({
  error,
  children,
  testId,
}: {
  error: SerializedError;
  children?: ReactNode;
  testId?: string;
}) {
  return (
    <div className="error-box" role="alert" data-testid={testId} data-code={error.code}>
      <strong>{errorTitle(error)}.</strong> <span>{error.message}</span>
      {error.hint && <p className="hint">What to do: {error.hint}</p>}
      {children && <div className="actions">{children}</div>}
    </div>
  );
}

/** Browser storage quota errors (localStorage, Cache Storage, IndexedDB). */
export function isQuotaError(error: unknown): boolean {
  return (
    error instanceof DOMException &&
    (error.name === 'QuotaExceededError' || error.name === 'NS_ERROR_DOM_QUOTA_REACHED')
  );
}
