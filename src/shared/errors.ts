/**
 * The base of every typed error in the lab, and the codes the UI and the CLI tell apart. Every
 * error says what went wrong (`message`) and what the user can do about it (`hint`), so it can be
 * shown without guessing from a message string. The layers derive their own kinds from it: the
 * engine's in src/engine/errors.ts, model IO's in src/io/errors.ts, the data layer's in
 * src/data/errors.ts, runs' in src/train/types.ts.
 */
export type VulnLabErrorCode =
  | 'webgpu-unavailable'
  | 'unsupported'
  | 'device-lost'
  | 'out-of-memory'
  | 'gpu-validation'
  | 'limit-exceeded'
  | 'bad-input'
  /** A bug in VulnLab (an invariant broke); the message says which. */
  | 'internal';

export class VulnLabError extends Error {
  readonly code: VulnLabErrorCode;
  readonly hint: string;

  constructor(code: VulnLabErrorCode, message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.hint = hint;
  }
}

/** A byte count in binary units for messages ("1.5 MiB"). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
