import { describe, expect, it } from 'vitest';
import { normalizeCode } from '../../src/data/normalize.ts';
import { explainView } from '../../src/worker/explain-view.ts';

// A character-level "tokenizer": one token per character (its code point).
const encode = (s: string) => [...s].map((c) => c.codePointAt(0)!);
const decode = (ids: readonly number[]) => String.fromCodePoint(...ids);

describe('explainView (the Scan panel heat-map data)', () => {
  it('cuts the source into scored tokens and unscored gaps, joined back to the source', () => {
    const original = 'int f() {\n  // note\n  return x;\n}';
    const normalize = { stripComments: true, collapseWhitespace: true };
    const normalized = normalizeCode(original, normalize);
    const codeTokens = encode(normalized);
    // Only "x" matters.
    const attributions = codeTokens.map((id) => (id === 'x'.codePointAt(0) ? 1 : 0));
    const view = explainView({ original, normalized, normalize, codeTokens, attributions, decode });
    expect(view.segments.map((s) => s.text).join('')).toBe(original);
    expect(view.segments.find((s) => s.text === 'x')?.score).toBe(1);
    // The comment was stripped before tokenizing: not scored.
    expect(view.segments.filter((s) => s.text.includes('note')).every((s) => s.score === null)).toBe(true);
    expect(view.topLines).toEqual([{ line: 2, weight: 1, share: 1 }]);
    expect(view.lines.find((l) => l.line === 2)?.weight).toBe(1);
  });

  it('leaves code cut by head truncation unscored', () => {
    const original = 'a = 1;\nb = 2;';
    const codeTokens = encode('a = 1;');
    const attributions = codeTokens.map(() => 0.5);
    const view = explainView({
      original,
      normalized: original,
      normalize: {},
      codeTokens,
      attributions,
      decode,
    });
    expect(view.segments.map((s) => s.text).join('')).toBe(original);
    expect(view.segments.at(-1)).toEqual({ text: '\nb = 2;', score: null });
    expect(view.lines.map((l) => l.line)).toEqual([0]);
  });
});
