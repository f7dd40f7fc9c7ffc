/**
 * Typed errors of the engine, one class per kind, all derived from the lab's `VulnLabError`
 * (src/shared/errors.ts). Every error says what went wrong and what the user can do about it
 * (`hint`), so the UI and the CLI can show it without guessing from a message string. Engine code
 * throws these, not a plain `Error`: device and driver trouble (WebGPUUnavailableError, DeviceLostError,
 * OutOfMemoryError, GpuValidationError), what the adapter or the kernels cannot do
 * (UnsupportedError, LimitExceededError), data handed to the engine that it cannot use
 * (BadInputError), shapes and sizes that disagree between the engine's own parts (ShapeError) and
 * broken invariants (InternalError).
 */
import { VulnLabError, formatBytes } from '../shared/errors.ts';

export { VulnLabError, formatBytes, type VulnLabErrorCode } from '../shared/errors.ts';

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

/** Data handed to the engine that it cannot use: a token id outside the vocabulary, a label not 0 or 1. */
export class BadInputError extends VulnLabError {
  constructor(
    message: string,
    hint = 'Check the tokenized data against the model: token ids below its vocabulary size, labels 0 or 1, lengths within its context.',
  ) {
    super('bad-input', message, hint);
  }
}

/**
 * Shapes or sizes that disagree between the engine's parts (a kernel given a tensor of the wrong
 * size, a pack of another length, a parameter missing): the caller is code of the lab, so it is a bug.
 */
export class ShapeError extends VulnLabError {
  constructor(
    message: string,
    hint = 'This is a bug in VulnLab; please report it with the model config and pack length.',
  ) {
    super('internal', message, hint);
  }
}

/** An invariant of the engine broke (a buffer released twice, a shader missing): a bug in VulnLab. */
export class InternalError extends VulnLabError {
  constructor(message: string, hint = 'This is a bug in VulnLab; please report it.') {
    super('internal', message, hint);
  }
}
