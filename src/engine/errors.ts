/**
 * Typed errors of the engine. Every error says what went wrong and what the user can do about it
 * (`hint`), so the UI and the CLI can show it without guessing from a message string.
 */
export type VulnLabErrorCode =
  | 'webgpu-unavailable'
  | 'unsupported'
  | 'device-lost'
  | 'out-of-memory'
  | 'gpu-validation'
  | 'limit-exceeded'
  | 'bad-input';

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

/** No WebGPU at all: no `navigator.gpu`, no adapter, or (Node) no Vulkan driver Dawn accepts. */
export class WebGPUUnavailableError extends VulnLabError {
  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('webgpu-unavailable', message, hint, options);
  }
}

/** The adapter exists but lacks something this operation needs (a feature, a format, a limit). */
export class UnsupportedError extends VulnLabError {
  constructor(message: string, hint: string) {
    super('unsupported', message, hint);
  }
}

export class DeviceLostError extends VulnLabError {
  readonly reason: GPUDeviceLostReason | 'unknown';
  constructor(reason: GPUDeviceLostReason | 'unknown', message: string) {
    super(
      'device-lost',
      `The GPU device was lost (${reason}): ${message || 'no message from the driver'}`,
      reason === 'destroyed'
        ? 'The device was closed by the lab; start a new session.'
        : 'Resume from the last checkpoint. If it keeps happening, use a smaller model, a shorter pack length or q4_0 weights.',
    );
    this.reason = reason;
  }
}

export class OutOfMemoryError extends VulnLabError {
  readonly requestedBytes: number;
  constructor(what: string, requestedBytes: number, cause?: unknown) {
    super(
      'out-of-memory',
      `Out of GPU memory while allocating ${what} (${formatBytes(requestedBytes)}).`,
      'Use a smaller pack length, a lower LoRA rank, q4_0 weights, gradient checkpointing, or a smaller model.',
      { cause },
    );
    this.requestedBytes = requestedBytes;
  }
}

/** A WGSL compile error or an API misuse caught by the device: a bug in the lab, reported with detail. */
export class GpuValidationError extends VulnLabError {
  constructor(what: string, message: string) {
    super(
      'gpu-validation',
      `GPU validation failed in ${what}: ${message}`,
      'This is a bug in VulnLab; please report it.',
    );
  }
}

export class LimitExceededError extends VulnLabError {
  constructor(what: string, needed: number, limit: number, limitName: string) {
    super(
      'limit-exceeded',
      `${what} needs ${needed} but this adapter's ${limitName} is ${limit}.`,
      'Choose a smaller model or pack length, or a GPU with larger limits.',
    );
  }
}

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
