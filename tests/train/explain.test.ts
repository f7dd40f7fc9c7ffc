import { describe, expect, it } from 'vitest';
import { normalizeCode } from '../../src/data/normalize.ts';
import { ByteTokenizer } from '../../src/data/tokenize.ts';
import { lineAttributions, normalizedOffsets, tokenStarts, topLines } from '../../src/train/explain.ts';

// Byte tokens: a prefix cut inside a multi-byte character decodes to a replacement character.
const bytes = new ByteTokenizer();
const decoder = new TextDecoder();
const decode = (ids: readonly number[]) => decoder.decode(Uint8Array.from(ids));

const CODE = [
  'void f(String s) {',
  '    // café: build the query',
  '    String q = "SELECT ü FROM t WHERE a=" + s;',
  '    /* run */ stmt.execute(q);',
  '}',
].join('\n');

/** Attribution 1 on the token holding `needle` in the normalized code, 0 elsewhere. */
function oneHot(normalized: string, tokens: number[], needle: string, drop = 0) {
  const { starts } = tokenStarts(tokens, decode);
  const at = normalized.indexOf(needle);
  const k = Array.from(starts).findIndex((s, i) => s <= at && starts[i + 1] > at);
  const a = new Float64Array(tokens.length - drop);
  a[k - drop] = 1;
  return a;
}

describe('token attributions → source lines', () => {
  it('token starts cover the text, multi-byte characters included', () => {
    const tokens = bytes.encode(CODE);
    const { text, starts } = tokenStarts(tokens, decode);
    expect(text).toBe(CODE);
    expect(starts[tokens.length]).toBe(CODE.length);
    for (let k = 1; k <= tokens.length; k++) expect(starts[k]).toBeGreaterThanOrEqual(starts[k - 1]);
    // 'é' is 2 bytes: its first byte's token starts at the character, the second adds nothing.
    const e = CODE.indexOf('é');
    expect(Array.from(starts).filter((s) => s === e).length).toBe(2);
  });

  it('maps normalized offsets back to the original, skipping stripped comments', () => {
    const options = { stripComments: true, collapseWhitespace: true };
    const normalized = normalizeCode(CODE, options);
    const map = normalizedOffsets(CODE, normalized, options);
    for (let i = 0; i < normalized.length; i++) {
      if (/\S/.test(normalized[i])) expect(CODE[map[i]], `${i}`).toBe(normalized[i]);
    }
    // `stmt` follows a comment holding none of its letters; `run` inside it is never matched.
    expect(map[normalized.indexOf('stmt')]).toBe(CODE.indexOf('stmt'));
  });

  for (const normalize of [{}, { stripComments: true, collapseWhitespace: true }]) {
    it(`puts a token on its line: normalize ${JSON.stringify(normalize)}, whole and tail-truncated`, () => {
      const normalized = normalizeCode(CODE, normalize);
      const tokens = bytes.encode(normalized);
      for (const [needle, line] of [
        ['execute', 3],
        ['ü', 2],
        ['String s', 0],
      ] as const) {
        // 7 bytes, or (not normalized) up to the middle of 'é': the slice decodes from a broken character.
        const midE = bytes.encode(CODE.slice(0, CODE.indexOf('é'))).length + 1;
        const drops = needle === 'String s' ? [0] : normalized === CODE ? [0, 7, midE] : [0, 7];
        for (const drop of drops) {
          const lines = lineAttributions({
            original: CODE,
            normalized,
            normalize,
            codeTokens: tokens.slice(drop),
            attributions: oneHot(normalized, tokens, needle, drop),
            decode,
          });
          expect(
            lines.filter((l) => l.weight !== 0),
            `${needle} drop ${drop}`,
          ).toEqual([{ line, weight: 1 }]);
        }
      }
    });
  }

  it('top lines: positive weights, strongest first, shares of the absolute total', () => {
    const top = topLines(
      [
        { line: 0, weight: 1 },
        { line: 1, weight: -2 },
        { line: 2, weight: 3 },
        { line: 3, weight: 4 },
      ],
      2,
    );
    expect(top).toEqual([
      { line: 3, weight: 4, share: 0.4 },
      { line: 2, weight: 3, share: 0.3 },
    ]);
    expect(topLines([{ line: 0, weight: 0 }])).toEqual([]);
  });
});
