import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GpuContext } from '../engine/index.ts';
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

/** What every command accepts (parseFlags takes it out of the arguments and applies it). */
export const GLOBAL_FLAGS_HELP = `  --kernels cpu|gpu    matmul/linear kernel set: cpu = barrier-free (CPU adapters: llvmpipe,
                       SwiftShader), gpu = workgroup-memory tiles; default chosen per adapter`;

/**
 * Takes the global `--kernels cpu|gpu` (or `--kernels=…`) out of `args` and applies it to the GPU
 * contexts created afterwards; returns the other arguments.
 */
export function takeGlobalFlags(args: string[], help: string): string[] {
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      rest.push(...args.slice(i));
      break;
    }
    if (arg !== '--kernels' && !arg.startsWith('--kernels=')) {
      rest.push(arg);
      continue;
    }
    const raw = arg === '--kernels' ? args[++i] : arg.slice('--kernels='.length);
    const kernels = GpuContext.parseKernelSet(raw ?? '');
    if (!kernels) throw new UsageError(`--kernels must be cpu or gpu (got "${raw ?? ''}").`, help);
    GpuContext.setKernelOverride(kernels);
  }
  return rest;
}

/** node:util parseArgs with its errors turned into UsageError; global flags (`--kernels`) applied. */
export function parseFlags<T extends ParseArgsConfig['options']>(args: string[], options: T, help: string) {
  const rest = takeGlobalFlags(args, help);
  try {
    return parseArgs({ args: rest, options, allowPositionals: true, strict: true });
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
