/** The lab's `?kernels=cpu|gpu` override, parsed from the page URL's query. */
import { describe, expect, it } from 'vitest';
import { kernelsFromUrl } from '../../src/ui/kernels.ts';

describe('kernelsFromUrl', () => {
  it('reads cpu or gpu from the query', () => {
    const warn = (message: string) => expect.unreachable(message);
    expect(kernelsFromUrl('?kernels=gpu', warn)).toBe('gpu');
    expect(kernelsFromUrl('?kernels=cpu', warn)).toBe('cpu');
    expect(kernelsFromUrl('?theme=dark&kernels=GPU', warn)).toBe('gpu');
    expect(kernelsFromUrl('kernels=cpu', warn)).toBe('cpu');
  });

  it('gives the default (undefined) without the parameter', () => {
    const warn = (message: string) => expect.unreachable(message);
    expect(kernelsFromUrl('', warn)).toBeUndefined();
    expect(kernelsFromUrl('?theme=dark', warn)).toBeUndefined();
  });

  it('ignores a value naming no kernel set, with a warning', () => {
    for (const search of ['?kernels=tpu', '?kernels=', '?kernels=cpu,gpu']) {
      const warnings: string[] = [];
      expect(kernelsFromUrl(search, (m) => warnings.push(m))).toBeUndefined();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/no kernel set \(cpu or gpu\).*default/);
    }
  });
});
