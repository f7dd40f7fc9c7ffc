import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToUnicode } from '../../scripts/demo-model/bpe.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { DEMO_DIR } from './helpers/fixtures.ts';

const tokJson = readFileSync(join(DEMO_DIR, 'tokenizer.json'), 'utf8');
const tokConfig = readFileSync(join(DEMO_DIR, 'tokenizer_config.json'), 'utf8');
const config = JSON.parse(readFileSync(join(DEMO_DIR, 'config.json'), 'utf8')) as { vocab_size: number };

describe('tokenizer', () => {
  const tok = loadTokenizer(tokJson, tokConfig, { embeddingRows: config.vocab_size });

  it('demo tokenizer: byte-level BPE with all 256 byte symbols, <|endoftext|> = 0 and [PAD] last', () => {
    expect(tok.vocabSize).toBe(config.vocab_size);
    expect(tok.vocabSize).toBeGreaterThanOrEqual(2000);
    expect(tok.eosId).toBe(0);
    expect(tok.padId).toBe(config.vocab_size - 1);
    expect(tok.tokenToId('[PAD]')).toBe(tok.padId);
    for (const ch of bytesToUnicode()) expect(tok.tokenToId(ch)).toBeDefined();
  });

  it('round-trips Java code exactly (no clean-up of " ," or " ." and whitespace kept)', () => {
    const code =
      'public void f(String s) {\n\tif (s == null) return ;\n    log.info("a , b . c \'s") ;  // é ✓ 🙂\r\n}\n\n';
    const ids = tok.encode(code);
    expect(ids.length).toBeLessThan(code.length);
    expect(tok.decode(ids)).toBe(code);
    expect(tok.decode([tok.eosId!, ...tok.encode('x'), tok.padId])).toBe('<|endoftext|>x[PAD]');
    expect(tok.decode([tok.eosId!, ...tok.encode('x'), tok.padId], true)).toBe('x');
  });

  it('round-trips arbitrary strings (property): no byte is dropped', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
        const ids = tok.encode(s);
        expect(ids.every((id) => id >= 0 && id < config.vocab_size)).toBe(true);
        expect(tok.decode(ids)).toBe(s);
      }),
      { numRuns: 80 },
    );
  });

  it('takes the pad id from config.json when the tokenizer names none, else falls back to EOS', () => {
    const withoutPad = JSON.stringify({ ...JSON.parse(tokConfig), pad_token: undefined });
    expect(loadTokenizer(tokJson, withoutPad, { padTokenId: 5 }).padId).toBe(5);
    const j = JSON.parse(tokJson);
    j.added_tokens = j.added_tokens.filter((t: { content: string }) => t.content !== '[PAD]');
    delete j.model.vocab['[PAD]'];
    expect(loadTokenizer(JSON.stringify(j), withoutPad).padId).toBe(0);
  });

  it('refuses a tokenizer whose ids exceed the embedding table, and broken JSON', () => {
    const err = (() => {
      try {
        loadTokenizer(tokJson, tokConfig, { embeddingRows: config.vocab_size - 1 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toMatchObject({ reason: 'vocab-too-large', code: 'bad-input' });
    expect((err as Error).message).toMatch(new RegExp(`${config.vocab_size - 1}`));
    expect(() => loadTokenizer('{"model":', undefined)).toThrow(/not valid JSON/);
  });
});
