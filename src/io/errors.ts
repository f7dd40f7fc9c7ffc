/**
 * Typed errors of model IO. Every error carries a `reason` so tests, the UI and the CLI can tell
 * the cases apart without parsing messages, and a `hint` saying what the user can do.
 */
import { VulnLabError, type VulnLabErrorCode } from '../shared/errors.ts';

export type ModelIoReason =
  // files and containers
  | 'truncated'
  | 'header-out-of-range'
  | 'bad-header'
  | 'offset-out-of-range'
  | 'overlapping-tensors'
  | 'dtype-mismatch'
  | 'shape-mismatch'
  | 'missing-tensor'
  | 'duplicate-tensor'
  | 'unexpected-tensor'
  | 'unsupported-dtype'
  | 'forbidden-global'
  | 'unknown-opcode'
  | 'bad-pickle'
  | 'bad-zip'
  | 'unsupported-architecture'
  | 'unsupported-quant'
  | 'bad-config'
  | 'unsupported-config'
  | 'bad-tokenizer'
  | 'vocab-too-large'
  | 'no-weights'
  // transport
  | 'unauthorized'
  | 'gated'
  | 'not-found'
  | 'network'
  | 'range-unsupported'
  | 'http-error'
  // cache
  | 'quota-exceeded';

export class ModelIoError extends VulnLabError {
  readonly reason: ModelIoReason;
  constructor(
    reason: ModelIoReason,
    message: string,
    hint: string,
    options?: { cause?: unknown; code?: VulnLabErrorCode },
  ) {
    super(options?.code ?? 'bad-input', message, hint, options);
    this.reason = reason;
  }
}

/** A checkpoint file is malformed or disagrees with the config. */
export class ModelFormatError extends ModelIoError {
  readonly file: string | undefined;
  constructor(reason: ModelIoReason, file: string | undefined, message: string, hint?: string) {
    super(
      reason,
      file ? `${file}: ${message}` : message,
      hint ?? 'The file is damaged or not a GPT-BigCode checkpoint; download it again or pick another model.',
    );
    this.file = file;
  }
}

/** A checkpoint uses something this lab does not implement (architecture, quant type, dtype, config value). */
export class UnsupportedModelError extends ModelIoError {
  constructor(reason: ModelIoReason, message: string, hint: string) {
    super(reason, message, hint, { code: 'unsupported' });
  }
}

/** A pickle asked for something the restricted unpickler refuses: nothing from it ever runs. */
export class UnsafePickleError extends ModelIoError {
  constructor(reason: 'forbidden-global' | 'unknown-opcode' | 'bad-pickle', file: string, message: string) {
    super(
      reason,
      `${file}: ${message}`,
      'This pytorch_model.bin contains more than a plain state dict and was not loaded. Use the safetensors or GGUF version of the model, or re-save the state dict with torch.save(model.state_dict()).',
    );
  }
}

/** HTTP / Hub failures. `status` is the HTTP status when there was one. */
export class HubError extends ModelIoError {
  readonly status: number | undefined;
  readonly url: string;
  constructor(
    reason: 'unauthorized' | 'gated' | 'not-found' | 'network' | 'range-unsupported' | 'http-error',
    url: string,
    status: number | undefined,
    message: string,
    hint: string,
    cause?: unknown,
  ) {
    super(reason, message, hint, { cause });
    this.status = status;
    this.url = url;
  }
}

export function hubErrorForStatus(url: string, status: number, gatedRepo?: string): HubError {
  const what = gatedRepo ?? redactUrl(url);
  if (status === 401) {
    return new HubError(
      'unauthorized',
      url,
      status,
      `${what} needs a Hugging Face access token (HTTP 401).`,
      'Create a read token at huggingface.co/settings/tokens, accept the model licence on its page, and enter the token.',
    );
  }
  if (status === 403) {
    return new HubError(
      'gated',
      url,
      status,
      `Access to ${what} is refused (HTTP 403): the model is gated or the token lacks access.`,
      "Open the model's page on huggingface.co, accept its licence with the account that owns the token, then retry.",
    );
  }
  if (status === 404) {
    return new HubError(
      'not-found',
      url,
      status,
      `${what} was not found (HTTP 404).`,
      'Check the repository id, revision and file name; private repositories also answer 404 without a token.',
    );
  }
  return new HubError(
    'http-error',
    url,
    status,
    `Request for ${what} failed with HTTP ${status}.`,
    'The server had a problem; retry in a moment.',
  );
}

export function networkError(url: string, cause: unknown): HubError {
  return new HubError(
    'network',
    url,
    undefined,
    `Network failure while fetching ${redactUrl(url)}: ${cause instanceof Error ? cause.message : String(cause)}.`,
    'Check the connection (or a CORS/ad blocker in the browser) and retry; finished tensors are not downloaded again when a cache is used.',
    cause,
  );
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.search = '';
    return u.toString();
  } catch {
    return url;
  }
}
