import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubError, ModelFormatError } from '../../src/io/errors.ts';
import { HubModelFiles } from '../../src/io/hub.ts';
import { NodeFileByteSource } from '../../src/io/node-source.ts';
import {
  BlobByteSource,
  HttpByteSource,
  MemoryByteSource,
  parseContentRange,
  type ByteSource,
} from '../../src/io/source.ts';
import { FakeHub } from './helpers/hub-server.ts';

const data = new Uint8Array(10_000).map((_, i) => (i * 31 + 7) & 0xff);
const hub = new FakeHub();

beforeAll(async () => {
  await hub.start();
  hub.repos.set('acme/open', { files: new Map([['w.bin', data]]) });
  hub.repos.set('acme/gated', { files: new Map([['w.bin', data]]), token: 'hf_good' });
  hub.repos.set('acme/norange', { files: new Map([['w.bin', data]]), ignoreRange: true });
  hub.repos.set('acme/cdn', { files: new Map([['w.bin', data]]), token: 'hf_good', redirectToCdn: true });
  hub.repos.set('acme/flaky', { files: new Map([['w.bin', data]]), dropAfterBytes: 3000, dropCount: 2 });
});
afterAll(() => hub.stop());

describe('byte sources', () => {
  it('memory, Blob and Node file sources return exactly the requested ranges', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vulnlab-io-'));
    writeFileSync(join(dir, 'f.bin'), data);
    const sources: ByteSource[] = [
      new MemoryByteSource(data),
      new BlobByteSource(new Blob([data])),
      await NodeFileByteSource.open(join(dir, 'f.bin')),
    ];
    for (const s of sources) {
      expect(s.size).toBe(data.length);
      expect(await s.read(1234, 777)).toEqual(data.slice(1234, 2011));
      expect((await s.read(0, 0)).length).toBe(0);
      await expect(s.read(9_999, 2)).rejects.toMatchObject({ reason: 'truncated' });
      await expect(s.read(-1, 2)).rejects.toBeInstanceOf(ModelFormatError);
      await s.close?.();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses Content-Range forms', () => {
    expect(parseContentRange('bytes 0-9/100')).toEqual({ start: 0, end: 9, total: 100 });
    expect(parseContentRange('bytes */0')).toEqual({ start: 0, end: -1, total: 0 });
    expect(parseContentRange('nonsense')).toBeUndefined();
  });

  it('HTTP source reads with Range requests and learns the size from Content-Range', async () => {
    const s = await HttpByteSource.open(`${hub.url}/acme/open/resolve/main/w.bin`);
    expect(s.size).toBe(data.length);
    expect(await s.read(5000, 1000)).toEqual(data.slice(5000, 6000));
    const last = hub.log.at(-1)!;
    expect(last.range).toBe('bytes=5000-5999');
    expect(last.bytes).toBe(1000);
  });

  it('refuses a server that ignores Range instead of downloading whole files', async () => {
    await expect(HttpByteSource.open(`${hub.url}/acme/norange/resolve/main/w.bin`)).rejects.toMatchObject({
      reason: 'range-unsupported',
    });
  });

  it('resumes a read after the connection drops mid-body', async () => {
    const s = await HttpByteSource.open(`${hub.url}/acme/flaky/resolve/main/w.bin`, {
      retryDelayMs: 1,
      size: data.length,
    });
    const before = hub.log.length;
    expect(await s.read(0, 8000)).toEqual(data.slice(0, 8000));
    const ranges = hub.log.slice(before).map((l) => l.range);
    // The retry asks only for what is still missing.
    expect(ranges[0]).toBe('bytes=0-7999');
    expect(ranges.at(-1)).not.toBe('bytes=0-7999');
  });

  it('retries server errors (503) and gives up with a typed error when they persist', async () => {
    hub.repos.set('acme/busy', { files: new Map([['w.bin', data]]), errorCount: 2 });
    const s = await HttpByteSource.open(`${hub.url}/acme/busy/resolve/main/w.bin`, {
      retryDelayMs: 1,
      size: data.length,
    });
    expect(await s.read(0, 100)).toEqual(data.slice(0, 100));
    hub.repos.get('acme/busy')!.errorCount = 10;
    await expect(s.read(0, 100)).rejects.toMatchObject({ reason: 'http-error', status: 503 });
  });

  it('reports a network failure (nothing listening) as a typed network error', async () => {
    const s = HttpByteSource.open('http://127.0.0.1:9/x.bin', { retries: 0 });
    await expect(s).rejects.toMatchObject({ reason: 'network' });
    await expect(s).rejects.toBeInstanceOf(HubError);
  });
});

describe('hub access', () => {
  it('lists files and reads them through @huggingface/hub against hubBaseUrl', async () => {
    const files = new HubModelFiles('acme/open', { hubBaseUrl: hub.url });
    expect(await files.list()).toEqual([{ path: 'w.bin', size: data.length, hash: 'oid-w.bin' }]);
    const s = await files.open('w.bin');
    expect(await s.read(10, 20)).toEqual(data.slice(10, 30));
  });

  it('maps 401 (no token), 403 (token without access) and 404 to distinct errors', async () => {
    await expect(new HubModelFiles('acme/gated', { hubBaseUrl: hub.url }).list()).rejects.toMatchObject({
      reason: 'unauthorized',
      status: 401,
    });
    await expect(
      new HubModelFiles('acme/gated', { hubBaseUrl: hub.url, token: 'hf_wrong' }).list(),
    ).rejects.toMatchObject({ reason: 'gated', status: 403 });
    await expect(new HubModelFiles('acme/missing', { hubBaseUrl: hub.url }).list()).rejects.toMatchObject({
      reason: 'not-found',
      status: 404,
    });
    const noToken = new HubModelFiles('acme/gated', { hubBaseUrl: hub.url });
    await expect(noToken.open('w.bin')).rejects.toMatchObject({ reason: 'unauthorized' });
    const ok = new HubModelFiles('acme/gated', { hubBaseUrl: hub.url, token: 'hf_good' });
    await ok.list();
    expect(await (await ok.open('w.bin')).read(0, 4)).toEqual(data.slice(0, 4));
    const err = await new HubModelFiles('acme/open', { hubBaseUrl: hub.url })
      .open('nope.bin')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'not-found' });
    expect((err as HubError).hint.length).toBeGreaterThan(10);
  });

  it('sends the token only to the hub host, never to a CDN it redirects to', async () => {
    const files = new HubModelFiles('acme/cdn', { hubBaseUrl: hub.url, token: 'hf_good' });
    await files.list();
    const before = hub.log.length;
    expect(await (await files.open('w.bin')).read(100, 50)).toEqual(data.slice(100, 150));
    const entries = hub.log.slice(before);
    const toHub = entries.filter((l) => l.host.startsWith('127.0.0.1'));
    const toCdn = entries.filter((l) => l.host.startsWith('localhost'));
    expect(toHub.length).toBeGreaterThan(0);
    expect(toCdn.length).toBeGreaterThan(0);
    expect(toHub.every((l) => l.authorization === 'Bearer hf_good')).toBe(true);
    expect(toCdn.every((l) => l.authorization === undefined)).toBe(true);
    // A source opened on a non-hub URL never gets the token.
    const other = await HttpByteSource.open(`http://localhost:${hub.port}/cdn/acme/cdn/w.bin`, {
      token: 'hf_good',
      tokenHost: new URL(hub.url).host,
    });
    await other.read(0, 1);
    expect(hub.log.at(-1)!.authorization).toBeUndefined();
  });
});
