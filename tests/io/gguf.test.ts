import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeWeight } from '../../src/engine/quant.ts';
import { toF32 } from '../../src/io/convert.ts';
import { ggufToHfName, hfToGgufName, readGguf, writeGguf, type GgufValue } from '../../src/io/gguf.ts';
import { readSafetensorsHeader } from '../../src/io/safetensors.ts';
import { MemoryByteSource } from '../../src/io/source.ts';
import { readTensorBytes, rowsCols } from '../../src/io/tensors.ts';
import { DEMO_DIR, FIXTURES, readBytes, sameBytes } from './helpers/fixtures.ts';

const meta = (arch = 'starcoder'): Record<string, GgufValue> => ({
  'general.architecture': { type: 'string', value: arch },
  [`${arch}.context_length`]: { type: 'u32', value: 16 },
  [`${arch}.embedding_length`]: { type: 'u32', value: 32 },
  [`${arch}.feed_forward_length`]: { type: 'u32', value: 64 },
  [`${arch}.block_count`]: { type: 'u32', value: 1 },
  [`${arch}.attention.head_count`]: { type: 'u32', value: 2 },
  [`${arch}.attention.head_count_kv`]: { type: 'u32', value: 1 },
});
const zeros = (n: number) => new Uint8Array(n);

describe('GGUF (llama.cpp starcoder)', () => {
  it('maps every starcoder tensor name to its Hugging Face name and back', () => {
    for (const [g, h] of [
      ['token_embd.weight', 'transformer.wte.weight'],
      ['position_embd.weight', 'transformer.wpe.weight'],
      ['output_norm.bias', 'transformer.ln_f.bias'],
      ['output.weight', 'lm_head.weight'],
      ['blk.3.attn_norm.weight', 'transformer.h.3.ln_1.weight'],
      ['blk.3.attn_qkv.weight', 'transformer.h.3.attn.c_attn.weight'],
      ['blk.3.attn_output.bias', 'transformer.h.3.attn.c_proj.bias'],
      ['blk.3.ffn_norm.bias', 'transformer.h.3.ln_2.bias'],
      ['blk.3.ffn_up.weight', 'transformer.h.3.mlp.c_fc.weight'],
      ['blk.3.ffn_down.weight', 'transformer.h.3.mlp.c_proj.weight'],
    ]) {
      expect(ggufToHfName(g)).toBe(h);
      expect(hfToGgufName(h)).toBe(g);
    }
    expect(ggufToHfName('blk.0.attn_q.weight')).toBeUndefined();
  });

  it('reads the demo GGUF: config from metadata, Q8_0 linears, F16 embeddings, F32 norms, values match safetensors', async () => {
    const g = await readGguf(
      new MemoryByteSource(readBytes(join(FIXTURES, 'demo/demo-q8_0.gguf')), 'demo.gguf'),
    );
    expect(g.config).toMatchObject({
      n_embd: 64,
      n_layer: 2,
      n_head: 4,
      n_inner: 256,
      n_positions: 1024,
      multi_query: true,
    });
    const st = await readSafetensorsHeader(
      new MemoryByteSource(readBytes(join(DEMO_DIR, 'model.safetensors'))),
    );
    expect(g.config.vocab_size).toBe(st.tensors[0].shape[0]);
    expect(g.tensors.map((t) => t.name).sort()).toEqual(st.tensors.map((t) => t.name).sort());
    for (const s of st.tensors) {
      const t = g.tensors.find((x) => x.name === s.name)!;
      expect(t.shape).toEqual(s.shape);
      const [rows, cols] = rowsCols(s.shape);
      const ref = toF32('F32', await readTensorBytes(s), rows, cols);
      const got = toF32(t.dtype, await readTensorBytes(t), rows, cols);
      if (s.name.endsWith('c_attn.weight')) expect(t.dtype).toBe('Q8_0');
      if (s.name.includes('wte')) expect(t.dtype).toBe('F16');
      if (t.dtype === 'F32') expect(sameBytes(await readTensorBytes(t), await readTensorBytes(s))).toBe(true);
      if (t.dtype === 'Q8_0') {
        // Same block bytes as quantizing the f32 values ourselves (GGUF-exact q8_0).
        expect(sameBytes(await readTensorBytes(t), encodeWeight('q8_0', rows, cols, ref))).toBe(true);
      }
      let maxErr = 0;
      let refMax = 0;
      for (let i = 0; i < ref.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(ref[i] - got[i]));
        refMax = Math.max(refMax, Math.abs(ref[i]));
      }
      // Q8_0: half a step of amax/127, plus the f16 rounding of the block scale (≤ amax·2^-11);
      // F16: rounding at 2^-11 relative.
      const bound = t.dtype === 'Q8_0' ? refMax / 254 + refMax * 2 ** -11 : refMax * 2 ** -11;
      expect(maxErr).toBeLessThanOrEqual(bound + 1e-7);
    }
  });

  it('refuses GGUF files of another architecture', async () => {
    const file = writeGguf(meta('falcon'), [
      { name: 'token_embd.weight', shape: [4, 32], type: 'F32', data: zeros(512) },
    ]);
    const err = await readGguf(new MemoryByteSource(file, 'falcon.gguf')).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'unsupported-architecture', code: 'unsupported' });
    expect((err as Error).message).toMatch(/"falcon"/);
    // The message names what is read (the Llama family's: tests/io/families.test.ts).
    expect((err as Error).message).toMatch(/"llama", "qwen2", "starcoder2"/);
  });

  it('refuses quant types other than F32/F16/Q8_0/Q4_0, naming the type', async () => {
    // Q4_K (ggml type 12) on a 256-wide row.
    const file = writeGguf(meta(), [
      { name: 'token_embd.weight', shape: [4, 32], type: 'F32', data: zeros(512) },
      { name: 'blk.0.ffn_up.weight', shape: [64, 32], type: 'F32', data: zeros(1152), typeId: 12 },
    ]);
    const err = await readGguf(new MemoryByteSource(file, 'q4k.gguf')).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'unsupported-quant' });
    expect((err as Error).message).toMatch(/Q4_K/);
  });

  it('rejects a tensor listed twice and tensors whose data overlap', async () => {
    const embd = { name: 'token_embd.weight', shape: [4, 32], type: 'F32' as const, data: zeros(512) };
    const norm = { name: 'output_norm.weight', shape: [32], type: 'F32' as const, data: zeros(128) };
    const twice = await readGguf(new MemoryByteSource(writeGguf(meta(), [embd, embd]), 'twice.gguf')).catch(
      (e: unknown) => e,
    );
    expect(twice).toMatchObject({ reason: 'duplicate-tensor' });
    expect((twice as Error).message).toMatch(/token_embd\.weight appears twice/);
    const file = writeGguf(meta(), [embd, norm]);
    expect((await readGguf(new MemoryByteSource(file, 'ok.gguf'))).tensors).toHaveLength(2);
    setTensorOffset(file, 'output_norm.weight', 256); // inside token_embd's 512 bytes
    const overlap = await readGguf(new MemoryByteSource(file, 'overlap.gguf')).catch((e: unknown) => e);
    expect(overlap).toMatchObject({ reason: 'overlapping-tensors' });
    expect((overlap as Error).message).toMatch(/wte\.weight and transformer\.ln_f\.weight overlap/);
  });

  it('rejects a truncated GGUF, unknown tensor names and garbage', async () => {
    const file = writeGguf(meta(), [
      {
        name: 'token_embd.weight',
        shape: [4, 32],
        type: 'Q4_0',
        data: encodeWeight('q4_0', 4, 32, new Float32Array(128)),
      },
    ]);
    expect((await readGguf(new MemoryByteSource(file, 'ok.gguf'))).tensors[0]).toMatchObject({
      dtype: 'Q4_0',
      shape: [4, 32],
    });
    await expect(
      readGguf(new MemoryByteSource(file.slice(0, file.length - 50), 'cut.gguf')),
    ).rejects.toMatchObject({
      reason: 'offset-out-of-range',
    });
    const odd = writeGguf(meta(), [
      { name: 'blk.0.attn_q.weight', shape: [2, 32], type: 'F32', data: zeros(256) },
    ]);
    await expect(readGguf(new MemoryByteSource(odd, 'odd.gguf'))).rejects.toMatchObject({
      reason: 'unexpected-tensor',
    });
    await expect(
      readGguf(new MemoryByteSource(new TextEncoder().encode('not a gguf file at all'), 'x.gguf')),
    ).rejects.toMatchObject({
      reason: 'bad-header',
    });
  });
});

/** Rewrites the data offset (relative to the data section) in a tensor's info record. */
function setTensorOffset(file: Uint8Array, name: string, offset: number): void {
  const key = new TextEncoder().encode(name);
  const at = Buffer.from(file.buffer, file.byteOffset, file.byteLength).indexOf(Buffer.from(key));
  if (at < 0) throw new Error(`${name} not in the file`);
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const dims = dv.getUint32(at + key.length, true);
  dv.setBigUint64(at + key.length + 4 + 8 * dims + 4, BigInt(offset), true);
}
