import { parseArgs, type ParseArgsConfig } from 'node:util';
import { VulnLabError } from '../shared/errors.ts';

export interface Command {
  name: string;
  summary: string;
  help(): string;
  /** Resolves to the exit status when it is not 0 without being an error (scan: 3 = something flagged). */
  run(args: string[]): Promise<void | number>;
}

/** A wrong flag or argument: the message names it, the hint shows what is accepted. */
export class UsageError extends VulnLabError {
  constructor(message: string, hint: string) {
    super('bad-input', message, hint);
  }
}

/** node:util parseArgs with its errors turned into UsageError. */
export function parseFlags<T extends ParseArgsConfig['options']>(args: string[], options: T, help: string) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message, help);
  }
}

/** An optional `--threshold`-style flag: undefined when absent, else a probability in [0, 1]. */
export function probabilityFlag(name: string, raw: string | undefined, help: string): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!(value >= 0 && value <= 1)) {
    throw new UsageError(`--${name} must be a probability in [0, 1] (got "${raw}").`, help);
  }
  return value;
}
