/// <reference lib="webworker" />
import { VulnLabError } from '../engine/errors.ts';
import { createBrowserContext } from '../engine/gpu/browser.ts';
import type { GpuContext } from '../engine/gpu/context.ts';
import { matmul } from '../engine/kernels/matmul.ts';
import { matmulRef } from '../engine/reference/matmul.ts';
import { Rng, randomArray } from '../engine/random.ts';
import type {
  EngineRequest,
  EngineResponses,
  RequestMessage,
  ResponseMessage,
  SerializedError,
} from './protocol.ts';

let context: Promise<GpuContext> | undefined;

function gpu(): Promise<GpuContext> {
  context ??= createBrowserContext();
  // A failed or lost device is forgotten so the next request retries instead of failing forever.
  context.then(
    (ctx) => ctx.lost.then(() => (context = undefined)),
    () => (context = undefined),
  );
  return context;
}

/** A small awkward-shaped matmul checked against the float64 reference: proves kernels run here. */
async function selftest(): Promise<EngineResponses['selftest']> {
  const ctx = await gpu();
  const [M, N, K] = [33, 17, 65];
  const rng = new Rng(2024);
  const a = randomArray(rng, M * K);
  const b = randomArray(rng, N * K);
  const [bufA, bufB, bufC] = await Promise.all([
    ctx.storageFrom('selftest.A', a),
    ctx.storageFrom('selftest.B', b),
    ctx.storage('selftest.C', M * N * 4),
  ]);
  try {
    const dispatch = await matmul(ctx, bufA, bufB, bufC, { M, N, K });
    const start = performance.now();
    await ctx.run([dispatch]);
    const ms = performance.now() - start;
    const got = await ctx.readF32(bufC);
    const expected = matmulRef(a, b, undefined, M, N, K);
    let scale = 0;
    let maxAbs = 0;
    for (let i = 0; i < expected.length; i++) {
      scale = Math.max(scale, Math.abs(expected[i]));
      maxAbs = Math.max(maxAbs, Math.abs(got[i] - expected[i]));
    }
    const maxRelError = maxAbs / scale;
    return { kernel: dispatch.label, maxRelError, ok: maxRelError < 1e-5, ms };
  } finally {
    for (const buffer of [bufA, bufB, bufC]) buffer.destroy();
  }
}

async function handle(request: EngineRequest): Promise<EngineResponses[EngineRequest['type']]> {
  switch (request.type) {
    case 'probe':
      return (await gpu()).adapter;
    case 'selftest':
      return selftest();
  }
}

function serialize(error: unknown): SerializedError {
  if (error instanceof VulnLabError) return { code: error.code, message: error.message, hint: error.hint };
  return {
    code: 'internal',
    message: error instanceof Error ? error.message : String(error),
    hint: 'This is a bug in VulnLab; please report it with the message above.',
  };
}

self.onmessage = async (event: MessageEvent<RequestMessage>) => {
  const { id, ...request } = event.data;
  let response: ResponseMessage;
  try {
    response = { id, ok: true, result: await handle(request) };
  } catch (error) {
    response = { id, ok: false, error: serialize(error) };
  }
  self.postMessage(response);
};
