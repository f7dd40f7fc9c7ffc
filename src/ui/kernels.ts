/** The lab's `?kernels=cpu|gpu`: overrides the kernel set the engine picks for the adapter. */
import type { KernelSet } from '../worker/protocol.ts';

// The page may not import engine value code, so the two names are listed here as well.
const KERNEL_SETS: readonly KernelSet[] = ['cpu', 'gpu'];

/**
 * The kernel set a page URL's query names, or undefined for the adapter's default: no `kernels`
 * parameter, or one naming no set (which is ignored with a warning).
 */
export function kernelsFromUrl(
  search: string,
  warn: (message: string) => void = (message) => console.warn(message),
): KernelSet | undefined {
  const raw = new URLSearchParams(search).get('kernels');
  if (raw === null) return undefined;
  const name = raw.trim().toLowerCase();
  if ((KERNEL_SETS as readonly string[]).includes(name)) return name as KernelSet;
  warn(`?kernels=${raw} names no kernel set (cpu or gpu): the adapter's default is used.`);
  return undefined;
}
