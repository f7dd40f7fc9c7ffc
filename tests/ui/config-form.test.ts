/**
 * The hyperparameter form during a run: a next-token run refuses live loss changes (src/train/run.ts),
 * so the form locks the loss fields and says why; a classification run keeps them live.
 */
import { describe, expect, it } from 'vitest';
import { FIELDS, resolveConfig } from '../../src/train/config.ts';
import { fieldLock } from '../../src/ui/panels/ConfigForm.tsx';

const field = (path: string) => FIELDS.find((f) => f.path === path)!;
const LOSS = ['loss.gamma', 'loss.alpha', 'loss.positiveWeight'];

describe('fieldLock', () => {
  it('locks the loss fields of a running next-token run and says why', () => {
    const ntp = resolveConfig({ objective: 'ntp' });
    for (const path of LOSS) {
      expect(fieldLock(field(path), ntp, true)).toEqual({
        disabled: true,
        note: 'Not used by this run: it trains on next-token prediction.',
      });
    }
    expect(fieldLock(field('optimizer.lr'), ntp, true)).toEqual({ disabled: false });
    expect(fieldLock(field('loss.gamma'), ntp, false)).toEqual({ disabled: false });
  });

  it('keeps them live in a classification run; other fields lock while a run goes', () => {
    const cls = resolveConfig({ objective: 'cls' });
    for (const path of LOSS) expect(fieldLock(field(path), cls, true)).toEqual({ disabled: false });
    expect(fieldLock(field('lora.r'), cls, true)).toEqual({ disabled: true });
    expect(fieldLock(field('lora.r'), cls, false)).toEqual({ disabled: false });
    expect(fieldLock(field('model'), cls, false)).toEqual({ disabled: true });
  });
});
