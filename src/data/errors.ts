import { VulnLabError } from '../shared/errors.ts';
import type { ImportIssue } from './types';

/**
 * A dataset could not be read at all (as opposed to a few bad rows, which are reported as
 * `ImportIssue`s and skipped). Always code `bad-input`, with a hint the UI/CLI can show as is.
 */
export class DataError extends VulnLabError {
  /** Row-level issues collected before the import gave up (line numbers included). */
  readonly issues: ImportIssue[];
  constructor(message: string, hint: string, options?: { cause?: unknown; issues?: ImportIssue[] }) {
    super('bad-input', message, hint, options);
    this.issues = options?.issues ?? [];
  }
}

/** The archive (or stream) decompresses to more than the configured cap: a zip bomb or simply too big. */
export class SizeLimitError extends DataError {
  readonly limitBytes: number;
  constructor(what: string, limitBytes: number) {
    super(
      `${what} is larger than the ${formatLimit(limitBytes)} limit for uncompressed data; import stopped.`,
      'If this archive is genuine, split it or raise maxUncompressedBytes; otherwise it may be a zip bomb.',
    );
    this.limitBytes = limitBytes;
  }
}

function formatLimit(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(0)} MiB` : `${bytes} bytes`;
}
