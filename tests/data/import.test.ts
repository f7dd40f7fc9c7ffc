import fc from 'fast-check';
import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { DataError, SizeLimitError } from '../../src/data/errors';
import { importDataset, type ImportOptions, type ImportResult } from '../../src/data/import';
import { writeParquet } from '../fixtures/data/parquet-writer';

const enc = (s: string) => new TextEncoder().encode(s);

/** A stream that hands the bytes over in pieces of the given sizes (cycled). */
function chunked(bytes: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let pos = 0;
  let k = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (pos >= bytes.length) return c.close();
      const n = Math.max(1, sizes[k++ % sizes.length]);
      c.enqueue(bytes.slice(pos, pos + n));
      pos += n;
    },
  });
}

async function importText(name: string, text: string, options?: ImportOptions): Promise<ImportResult> {
  return importDataset({ name, data: enc(text) }, options);
}

async function rejection(p: Promise<unknown>): Promise<DataError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DataError);
    expect((e as DataError).code).toBe('bad-input');
    expect((e as DataError).hint.length).toBeGreaterThan(10);
    return e as DataError;
  }
  throw new Error('expected a DataError');
}

describe('JSONL', () => {
  it('auto-maps the paper fields and the CodeXGLUE fields, normalizing optional ones', async () => {
    const r = await importText(
      'paper.jsonl',
      [
        JSON.stringify({
          code: 'void a() {}',
          target: 1,
          cwe: ['CWE-89'],
          commit: 'abc',
          status: 'x',
          weight: 3,
        }),
        JSON.stringify({ code: 'void b() {}', target: 0, cwe: 79, commit: 'def', split: 'valid' }),
      ].join('\n'),
    );
    expect(r.format).toBe('jsonl');
    expect(r.fieldMapping).toMatchObject({ code: 'code', label: 'target', cwe: 'cwe', commit: 'commit' });
    expect(r.records).toEqual([
      { code: 'void a() {}', label: 1, cwe: 'CWE-89', commit: 'abc', weight: 3 },
      { code: 'void b() {}', label: 0, cwe: 'CWE-79', commit: 'def', split: 'validation' },
    ]);
    const devign = await importText(
      'd.jsonl',
      JSON.stringify({ func: 'int f() { return 1; }', target: '1', idx: 7 }),
    );
    expect(devign.records).toEqual([{ code: 'int f() { return 1; }', label: 1, id: '7' }]);
  });

  it('reports malformed lines with their numbers and keeps the rest', async () => {
    const text = [
      JSON.stringify({ func: 'a', target: 1 }),
      '{"func": "b", "target": ', // broken JSON
      '',
      '[1, 2]', // not an object
      JSON.stringify({ func: 'c', target: 'maybe' }), // bad label
      JSON.stringify({ func: '', target: 0 }), // empty code
      JSON.stringify({ func: 'd', target: 'fixed', weight: -1 }), // bad weight: kept, reported
      JSON.stringify({ func: 'e', target: 'vulnerable' }),
    ].join('\r\n');
    const r = await importText('x.jsonl', text);
    expect(r.records.map((x) => [x.code, x.label])).toEqual([
      ['a', 1],
      ['d', 0],
      ['e', 1],
    ]);
    const byLine = Object.fromEntries(r.issues.map((i) => [i.line, i.kind]));
    expect(byLine).toEqual({
      2: 'malformed',
      4: 'malformed',
      5: 'bad-label',
      6: 'missing-field',
      7: 'bad-value',
    });
    expect(r.issueCounts.malformed).toBe(2);
  });

  it('accepts the label spellings and an explicit field override', async () => {
    const labels: [unknown, 0 | 1][] = [
      [1, 1],
      [0, 0],
      [true, 1],
      [false, 0],
      ['true', 1],
      ['False', 0],
      ['vulnerable', 1],
      ['safe', 0],
      ['fixed', 0],
      ['Vulnerable ', 1],
    ];
    const text = labels
      .map(([l], i) => JSON.stringify({ body: `f${i}`, func: 'decoy', bug: 'decoy', is_bad: l }))
      .join('\n');
    const r = await importText('o.jsonl', text, { fields: { code: 'body', label: 'is_bad' } });
    expect(r.records.map((x) => x.label)).toEqual(labels.map(([, l]) => l));
    expect(r.records[0].code).toBe('f0');
    const custom = await importText('c.jsonl', JSON.stringify({ code: 'x', label: 'CVE' }), {
      labelValues: { positive: ['cve'] },
    });
    expect(custom.records[0].label).toBe(1);
  });

  it('fails with a typed error naming the columns when no code/label column exists', async () => {
    const e = await rejection(importText('n.jsonl', JSON.stringify({ text: 'x', y: 1 })));
    expect(e.message).toMatch(/text, y/);
    const e2 = await rejection(
      importText('n.jsonl', JSON.stringify({ func: 'x', target: 1 }), { fields: { code: 'nope' } }),
    );
    expect(e2.hint).toMatch(/nope/);
  });

  it('handles empty and whitespace-only files with a typed error', async () => {
    expect((await rejection(importText('e.jsonl', ''))).message).toMatch(/empty/);
    expect((await rejection(importText('e.jsonl', ' \n\n  \n'))).message).toMatch(/empty/);
    expect((await rejection(importDataset({ name: 'e.csv', data: new Blob([]) }))).message).toMatch(/empty/);
    const allBad = await rejection(importText('b.jsonl', 'nope\nnope'));
    expect(allBad.issues.map((i) => i.line)).toEqual([1, 2]);
  });

  it('keeps one-class data (the quality report warns about it)', async () => {
    const r = await importText(
      'one.jsonl',
      [1, 2, 3].map((i) => JSON.stringify({ code: `f${i}`, target: 1 })).join('\n'),
    );
    expect(r.recordCount).toBe(3);
  });

  it('decodes invalid UTF-8 with replacement and reports it with the line', async () => {
    const good = enc(JSON.stringify({ code: 'ok', target: 0 }) + '\n');
    const bad = enc(JSON.stringify({ code: 'caf__', target: 1 }) + '\n');
    const i = bad.indexOf(0x5f);
    bad[i] = 0xc3; // truncated 2-byte sequence
    bad[i + 1] = 0x28; // '(' is not a continuation byte
    const bytes = new Uint8Array(good.length + bad.length);
    bytes.set(good);
    bytes.set(bad, good.length);
    const r = await importDataset({ name: 'bad.jsonl', data: bytes });
    expect(r.recordCount).toBe(2);
    expect(r.records[1].code).toContain('\uFFFD');
    expect(r.replacementChars).toBeGreaterThan(0);
    const issue = r.issues.find((x) => x.kind === 'encoding')!;
    expect(issue.line).toBe(2);
  });

  it('reads UTF-16 files with a BOM', async () => {
    const text = JSON.stringify({ code: 'naïve()', target: 1 });
    const bytes = new Uint8Array(2 + text.length * 2);
    bytes[0] = 0xff;
    bytes[1] = 0xfe;
    for (let k = 0; k < text.length; k++) {
      bytes[2 + 2 * k] = text.charCodeAt(k) & 255;
      bytes[3 + 2 * k] = text.charCodeAt(k) >> 8;
    }
    const r = await importDataset({ name: 'u16.jsonl', data: bytes });
    expect(r.records[0].code).toBe('naïve()');
  });

  it('gives the same records however the stream is chunked (JSONL, JSON, CSV)', async () => {
    const row = fc.record({
      code: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim() !== ''),
      label: fc.constantFrom(0, 1),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(row, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 }),
        fc.constantFrom('jsonl', 'json', 'csv'),
        async (rows, sizes, format) => {
          let text: string;
          if (format === 'jsonl')
            text = rows.map((r) => JSON.stringify({ code: r.code, target: r.label })).join('\n');
          else if (format === 'json')
            text = JSON.stringify(
              rows.map((r) => ({ code: r.code, target: r.label })),
              null,
              1,
            );
          else
            text =
              'code,target\r\n' + rows.map((r) => `"${r.code.replace(/"/g, '""')}",${r.label}`).join('\r\n');
          const r = await importDataset({ name: `p.${format}`, data: chunked(enc(text), sizes) });
          expect(r.records.map((x) => [x.code, x.label])).toEqual(rows.map((x) => [x.code, x.label]));
          expect(r.issues).toEqual([]);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('streams a multi-hundred-MB file with bounded memory and reports progress', async () => {
    const code =
      'public void run(String id) {\n  stmt.execute("SELECT * FROM t WHERE id=" + id);\n}\n'.repeat(20);
    const line = JSON.stringify({ func: code, target: 1, cwe: 'CWE-89' }) + '\n';
    const block = enc(line.repeat(Math.floor((1 << 20) / line.length)));
    const total = 256 * (1 << 20);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= total) return c.close();
        c.enqueue(block);
        sent += block.length;
      },
    });
    const heap0 = process.memoryUsage().heapUsed;
    let maxHeap = heap0;
    let count = 0;
    const progress: number[] = [];
    const r = await importDataset(
      { name: 'huge.jsonl', data: stream },
      {
        collect: false,
        onRecord: (rec) => {
          if (rec.label === 1) count++;
        },
        onProgress: (p) => {
          progress.push(p.bytesRead);
          maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed);
        },
      },
    );
    expect(r.bytesRead).toBe(sent);
    expect(r.bytesRead).toBeGreaterThan(250e6);
    expect(r.recordCount).toBe(count);
    expect(r.recordCount).toBe((block.length / line.length) * (sent / block.length));
    expect(r.records).toEqual([]);
    expect(progress.length).toBeGreaterThan(100);
    expect(progress.every((b, i) => i === 0 || b >= progress[i - 1])).toBe(true);
    expect(maxHeap - heap0).toBeLessThan(96 * (1 << 20)); // far below the 256 MiB that went through
  });
});

describe('JSON', () => {
  it('reads a JSON array, reporting a bad element by its line and keeping the others', async () => {
    const text =
      '[\n {"func": "a", "target": 1},\n {"func": "b", "target": tru},\n {"func": "c", "target": 0}\n]';
    const r = await importText('a.json', text);
    expect(r.records.map((x) => x.code)).toEqual(['a', 'c']);
    expect(r.issues).toMatchObject([{ kind: 'malformed', line: 3 }]);
    const unclosed = await importText('u.json', '[{"func": "a", "target": 1}, {"func": "b"');
    expect(unclosed.records.map((x) => x.code)).toEqual(['a']);
    expect(unclosed.issueCounts.malformed).toBeGreaterThan(0);
  });

  it('reads an object of arrays keyed by split', async () => {
    const r = await importText(
      'splits.json',
      JSON.stringify({
        train: [{ code: 'a', label: 1 }],
        validation: [{ code: 'b', label: 0 }],
        test: [{ code: 'c', label: 1, split: 'train' }],
      }),
    );
    expect(r.records.map((x) => [x.code, x.split])).toEqual([
      ['a', 'train'],
      ['b', 'validation'],
      ['c', 'train'], // an explicit split field wins
    ]);
  });
});

describe('CSV / TSV', () => {
  it('handles quoted multi-line fields, doubled quotes, CRLF, and reports bad rows by starting line', async () => {
    const text = [
      'id,func,target,project',
      '1,"void a() {\r\n  s = ""x, y"";\r\n}",1,p1',
      '2,void b() {},0', // too few fields: line 5
      '3,"void c() {\n}",safe,p2',
      '4,"never closed,1,p3',
      '5,void d() {},1,p4',
    ].join('\r\n');
    const r = await importText('x.csv', text);
    expect(r.records).toEqual([
      { code: 'void a() {\r\n  s = "x, y";\r\n}', label: 1, id: '1', project: 'p1' },
      { code: 'void c() {\n}', label: 0, id: '3', project: 'p2' },
    ]);
    expect(r.issues.map((i) => [i.line, i.kind])).toEqual([
      [5, 'malformed'],
      [8, 'malformed'], // unterminated quote: the rest of the file is inside it
    ]);
  });

  it('reads TSV and sniffs the format from content when the name has no extension', async () => {
    const r = await importText('data.tsv', 'code\tis_vulnerable\tcwe_id\nint f() {}\tTrue\tCWE-22\n');
    expect(r.records).toEqual([{ code: 'int f() {}', label: 1, cwe: 'CWE-22' }]);
    const sniffed = await importText('download', 'source,label\n"x()",0\n');
    expect(sniffed.format).toBe('csv');
    expect(sniffed.records[0]).toEqual({ code: 'x()', label: 0 });
    const header = await rejection(importText('h.csv', 'func,target\n'));
    expect(header.message).toMatch(/no usable records/);
  });
});

describe('Parquet', () => {
  const n = 50;
  const columns = (codec: 'GZIP' | 'UNCOMPRESSED' = 'GZIP') =>
    writeParquet(
      [
        {
          name: 'func',
          type: 'string',
          values: Array.from({ length: n }, (_, i) => `void f${i}() { g(${i}); }`),
        },
        { name: 'target', type: 'int64', values: Array.from({ length: n }, (_, i) => BigInt(i % 2)) },
        { name: 'project', type: 'string', values: Array.from({ length: n }, (_, i) => `proj${i % 5}`) },
        // a big column the import does not need: a Range reader must not fetch it
        { name: 'blob', type: 'string', values: Array.from({ length: n }, (_, i) => 'x'.repeat(20000) + i) },
        { name: 'is_vul', type: 'boolean', values: Array.from({ length: n }, () => true) },
      ],
      { rowsPerGroup: 16, codec },
    );

  it('reads row groups from bytes and from a Blob', async () => {
    const bytes = columns();
    for (const data of [bytes, new Blob([bytes])]) {
      const r = await importDataset({ name: 'train-00000.parquet', data });
      expect(r.format).toBe('parquet');
      expect(r.recordCount).toBe(n);
      expect(r.records[3]).toEqual({ code: 'void f3() { g(3); }', label: 1, project: 'proj3' });
    }
  });

  it('reads a URL with HTTP Range requests, fetching only the footer and the mapped columns', async () => {
    const bytes = columns('UNCOMPRESSED');
    expect(bytes.length).toBeGreaterThan(1e6);
    const ranges: string[] = [];
    const fakeFetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const headers = new Headers(init?.headers);
      if (init?.method === 'HEAD')
        return new Response(null, { headers: { 'content-length': String(bytes.length) } });
      const range = headers.get('range');
      if (!range) throw new Error(`whole-file GET of ${String(input)}`);
      ranges.push(range);
      const m = /bytes=(\d+)-(\d*)/.exec(range)!;
      const end = m[2] ? Number(m[2]) + 1 : bytes.length;
      return new Response(bytes.slice(Number(m[1]), end), { status: 206 });
    }) as typeof fetch;
    const progress: number[] = [];
    const r = await importDataset(
      { url: 'https://huggingface.co/datasets/x/y/resolve/main/data/train-00000-of-00001.parquet' },
      { fetch: fakeFetch, onProgress: (p) => progress.push(p.bytesRead) },
    );
    expect(r.recordCount).toBe(n);
    expect(r.records[4]).toEqual({ code: 'void f4() { g(4); }', label: 0, project: 'proj4' });
    expect(ranges.length).toBeGreaterThan(1);
    expect(r.bytesRead).toBeLessThan(bytes.length / 4); // the 1 MB blob column never travelled
    expect(progress.at(-1)).toBe(r.bytesRead);
  });

  it('fails with a typed error on a truncated file', async () => {
    const bytes = columns();
    await rejection(importDataset({ name: 'cut.parquet', data: bytes.slice(0, bytes.length - 100) }));
  });
});

describe('zip and folders of Java files', () => {
  const vulnerable = `package a;
public class Login {
  /** Looks a user up. */
  @Deprecated
  public User find(String name) throws SQLException {
    return db.query("SELECT * FROM users WHERE name = '" + name + "'");
  }
  Login(Db db) { this.db = db; }
}`;
  const safe = `package a;
public class Login {
  public User find(String name) throws SQLException {
    PreparedStatement ps = db.prepare("SELECT * FROM users WHERE name = ?");
    ps.setString(1, name);
    return ps.executeQuery();
  }
}`;

  it('labels methods by directory name and extracts methods and constructors from their annotations', async () => {
    const zip = zipSync({
      'dataset/vulnerable/Login.java': strToU8(vulnerable),
      'dataset/safe/Login.java': strToU8(safe),
      'dataset/safe/Broken.java': strToU8('public class Broken { void f( { }'),
      'dataset/README.md': strToU8('hello'),
    });
    const r = await importDataset({ name: 'data.zip', data: zip });
    expect(r.javaLabelling).toBe('directory');
    expect(r.records.map((x) => [x.file, x.label, x.code.split('\n')[0]])).toEqual([
      ['dataset/vulnerable/Login.java', 1, '@Deprecated'],
      ['dataset/vulnerable/Login.java', 1, 'Login(Db db) { this.db = db; }'],
      ['dataset/safe/Login.java', 0, 'public User find(String name) throws SQLException {'],
    ]);
    expect(r.parseFailures).toHaveLength(1);
    expect(r.parseFailures[0].file).toBe('dataset/safe/Broken.java');
    expect(r.parseFailures[0].message).toMatch(/line: 1, column/);
    expect(r.issues.some((i) => i.kind === 'skipped-file' && i.file === 'dataset/README.md')).toBe(true);
  });

  it('labels Juliet test cases by method name and scrubs the giveaways', async () => {
    const juliet = `package testcases.CWE89_SQL_Injection;
public class CWE89_SQL_Injection__getParameter_Servlet_01 extends AbstractTestCaseServlet {
    public void bad(HttpServletRequest request) throws Throwable {
        String data = request.getParameter("name"); /* POTENTIAL FLAW: read data from a parameter */
        badSink(data);
    }
    private void goodG2B(HttpServletRequest request) throws Throwable {
        String data = "foo"; /* FIX: Use a hardcoded string */
        goodG2BSink(data);
    }
    private void goodB2G(HttpServletRequest request) throws Throwable { String data = request.getParameter("name"); }
    public static void main(String[] args) { mainFromParent(args); }
}`;
    const files = [
      { path: 'CWE89_SQL_Injection/CWE89_SQL_Injection__getParameter_Servlet_01.java', data: juliet },
    ];
    const r = await importDataset({ files });
    expect(r.javaLabelling).toBe('juliet');
    expect(r.records.map((x) => x.label)).toEqual([1, 0, 0]);
    expect(r.records.every((x) => x.cwe === 'CWE-89')).toBe(true);
    for (const rec of r.records) {
      expect(rec.code).not.toMatch(/bad|good|FLAW|FIX|CWE89/i);
      expect(rec.code).toMatch(/request\.getParameter\("name"\)|"foo"/);
    }
    expect(r.issues.some((i) => i.kind === 'unlabelled' && /main/.test(i.message))).toBe(true);
    const raw = await importDataset({ files }, { scrubGiveaways: false });
    expect(raw.records[0].code).toMatch(/^public void bad\(/);
  });

  it('imports dataset files inside an archive', async () => {
    const zip = zipSync({
      'part1.jsonl': strToU8(JSON.stringify({ code: 'a', target: 1 }) + '\n'),
      'sub/part2.csv': strToU8('func,label\nb,0\n'),
      'empty.jsonl': new Uint8Array(0),
    });
    const r = await importDataset({ name: 'parts.zip', data: zip });
    expect(r.records.map((x) => x.code).sort()).toEqual(['a', 'b']);
    expect(r.issues).toMatchObject([{ kind: 'empty', file: 'empty.jsonl' }]);
  });

  it('refuses a zip bomb with a typed size-limit error before inflating it', async () => {
    const zeros = new Uint8Array(48 << 20);
    const bomb = zipSync({ 'a.jsonl': zeros, 'b.jsonl': zeros }, { level: 9 });
    expect(bomb.length).toBeLessThan(1 << 20);
    const heap0 = process.memoryUsage().heapUsed;
    await expect(
      importDataset({ name: 'bomb.zip', data: bomb }, { maxUncompressedBytes: 8 << 20 }),
    ).rejects.toBeInstanceOf(SizeLimitError);
    expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(40 << 20);
    const e = await rejection(
      importDataset({ name: 'bomb.zip', data: bomb }, { maxUncompressedBytes: 8 << 20 }),
    );
    expect(e.hint).toMatch(/zip bomb/);
  });

  it('reports a corrupt archive with a typed error', async () => {
    const zip = zipSync({ 'a.jsonl': strToU8(JSON.stringify({ code: 'a', target: 1 }).repeat(50)) });
    const broken = zip.slice();
    for (let i = 40; i < 80; i++) broken[i] ^= 0x5a;
    await rejection(importDataset({ name: 'broken.zip', data: broken }));
  });
});

describe('URL sources', () => {
  it('streams a JSONL URL and sniffs Parquet behind an extension-less URL (then switches to Range reads)', async () => {
    const jsonl = enc([1, 0, 1].map((t, i) => JSON.stringify({ code: `m${i}()`, target: t })).join('\n'));
    const parquet = writeParquet([
      { name: 'code', type: 'string', values: ['a()', 'b()'] },
      { name: 'label', type: 'int32', values: [1, 0] },
    ]);
    const calls: string[] = [];
    const fakeFetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const url = String(input);
      const range = new Headers(init?.headers).get('range');
      calls.push(`${init?.method ?? 'GET'} ${url}${range ? ` ${range}` : ''}`);
      const body = url.endsWith('.jsonl') ? jsonl : url.endsWith('/missing') ? null : parquet;
      if (!body) return new Response('not found', { status: 404 });
      if (init?.method === 'HEAD')
        return new Response(null, { headers: { 'content-length': String(body.length) } });
      if (range) {
        const m = /bytes=(\d+)-(\d*)/.exec(range)!;
        return new Response(body.slice(Number(m[1]), m[2] ? Number(m[2]) + 1 : body.length), { status: 206 });
      }
      return new Response(chunked(body, [5]), { headers: { 'content-length': String(body.length) } });
    }) as typeof fetch;
    const a = await importDataset({ url: 'https://example.org/data/train.jsonl' }, { fetch: fakeFetch });
    expect(a.records.map((r) => r.label)).toEqual([1, 0, 1]);
    const b = await importDataset({ url: 'https://example.org/api/download' }, { fetch: fakeFetch });
    expect(b.format).toBe('parquet');
    expect(b.records).toEqual([
      { code: 'a()', label: 1 },
      { code: 'b()', label: 0 },
    ]);
    expect(calls.some((c) => c.includes('bytes='))).toBe(true);
    const e = await rejection(importDataset({ url: 'https://example.org/missing' }, { fetch: fakeFetch }));
    expect(e.message).toMatch(/404/);
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    const text = JSON.stringify({ code: 'x', target: 1 }) + '\n';
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(enc(text.repeat(1000)));
      },
    });
    let records = 0;
    const p = importDataset(
      { name: 'endless.jsonl', data: stream },
      {
        collect: false,
        onRecord: () => {
          if (++records === 5000) controller.abort(new Error('user cancelled'));
        },
        signal: controller.signal,
      },
    );
    await expect(p).rejects.toThrow('user cancelled');
  });
});

describe('format edge cases', () => {
  it('reads semicolon CSV, JSON Lines named .json, and caps stored issues while counting all', async () => {
    const semi = await importText('eu.csv', 'code;label;cwe\n"a(); b();";1;89\n');
    expect(semi.records).toEqual([{ code: 'a(); b();', label: 1, cwe: 'CWE-89' }]);
    const lines = await importText('rows.json', '{"code": "x", "target": 1}\n{"code": "y", "target": 0}\n');
    expect(lines.records.map((x) => x.code)).toEqual(['x', 'y']);
    const many = ['{"code": "ok", "target": 1}', ...Array.from({ length: 1000 }, () => '{oops')].join('\n');
    const capped = await importText('many.jsonl', many, { maxIssues: 10 });
    expect(capped.issues).toHaveLength(10);
    expect(capped.issueCounts.malformed).toBe(1000);
    expect(capped.issues[9].line).toBe(11);
  });
});
