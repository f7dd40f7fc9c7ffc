/**
 * Source normalization for Java functions. Both transforms are literal-aware: text inside string,
 * text-block and char literals is never touched. Recorded in the run config as `NormalizeOptions`.
 */

export interface NormalizeOptions {
  /** Remove `//` and `/* … *\/` comments (Javadoc included). */
  stripComments?: boolean;
  /** Collapse every run of whitespace outside literals to one space and trim (the paper's option). */
  collapseWhitespace?: boolean;
}

type Piece = { kind: 'code' | 'literal' | 'comment'; text: string };

/** Split Java source into code, literal and comment pieces. Unterminated constructs run to the end. */
export function lexJava(src: string): Piece[] {
  const out: Piece[] = [];
  const n = src.length;
  let i = 0;
  let codeStart = 0;
  const flush = (end: number) => {
    if (end > codeStart) out.push({ kind: 'code', text: src.slice(codeStart, end) });
  };
  while (i < n) {
    const c = src.charCodeAt(i);
    if (c === 0x2f /* / */ && i + 1 < n) {
      const d = src.charCodeAt(i + 1);
      if (d === 0x2f || d === 0x2a) {
        flush(i);
        let end: number;
        if (d === 0x2f) {
          const nl = src.indexOf('\n', i + 2);
          end = nl < 0 ? n : nl; // the newline stays code
        } else {
          const close = src.indexOf('*/', i + 2);
          end = close < 0 ? n : close + 2;
        }
        out.push({ kind: 'comment', text: src.slice(i, end) });
        i = codeStart = end;
        continue;
      }
    }
    if (c === 0x22 /* " */ || c === 0x27 /* ' */) {
      flush(i);
      let end: number;
      if (c === 0x22 && src.startsWith('"""', i)) {
        const close = src.indexOf('"""', i + 3);
        // a text block ends at the first """ not preceded by an escaping backslash
        let k = close;
        while (k >= 0 && src.charCodeAt(k - 1) === 0x5c) k = src.indexOf('"""', k + 1);
        end = k < 0 ? n : k + 3;
      } else {
        let k = i + 1;
        while (k < n) {
          const e = src.charCodeAt(k);
          if (e === 0x5c) k += 2;
          else if (e === c || e === 10) break;
          else k++;
        }
        end = Math.min(n, k + 1);
      }
      out.push({ kind: 'literal', text: src.slice(i, end) });
      i = codeStart = end;
      continue;
    }
    i++;
  }
  flush(n);
  return out;
}

const MARK = '\uE000';

export function stripComments(src: string): string {
  if (src.includes(MARK)) src = src.split(MARK).join('');
  let marked = '';
  for (const p of lexJava(src)) {
    if (p.kind !== 'comment') marked += p.text;
    else
      marked +=
        MARK +
        p.text
          .replace(/[^\n]/g, '')
          .split('\n')
          .join('\n' + MARK);
  }
  const lines: string[] = [];
  for (const line of marked.split('\n')) {
    if (!line.includes(MARK)) {
      lines.push(line);
      continue;
    }
    const rest = line.replace(/\uE000/g, '');
    if (rest.trim() === '') continue; // the line only held a comment
    // Keep tokens apart: `a/**/b` must not become `ab`.
    lines.push(
      line
        .replace(/(\S)\uE000+(?=\S)/g, '$1 ')
        .replace(/\uE000/g, '')
        .replace(/[ \t]+$/, ''),
    );
  }
  return lines.join('\n').trim();
}

export function collapseWhitespace(src: string): string {
  let out = '';
  let afterNewline = true;
  for (const p of lexJava(src)) {
    if (p.kind === 'literal') {
      out += p.text;
      afterNewline = false;
    } else if (p.kind === 'comment' && p.text.startsWith('//')) {
      out += p.text + '\n';
      afterNewline = true;
    } else {
      let t = p.text.replace(/\s+/g, ' ');
      if (afterNewline) t = t.replace(/^ /, '');
      out += t;
      afterNewline = false;
    }
  }
  return out.trim();
}

export function normalizeCode(src: string, options: NormalizeOptions): string {
  let s = src;
  if (options.stripComments) s = stripComments(s);
  if (options.collapseWhitespace) s = collapseWhitespace(s);
  return s;
}

const PUNCT = /\s*([{}()[\];,.=+\-*/%<>!&|^?:~@])\s*/g;

/**
 * Key for "normalized duplicate" detection: comments dropped, whitespace outside literals
 * collapsed and removed around punctuation, so formatting-only differences compare equal.
 */
export function duplicateKey(src: string): string {
  let key = '';
  let code = '';
  for (const p of lexJava(src)) {
    if (p.kind === 'literal') {
      key += code.replace(/\s+/g, ' ').replace(PUNCT, '$1') + p.text;
      code = '';
    } else code += p.kind === 'comment' ? ' ' : p.text;
  }
  key += code.replace(/\s+/g, ' ').replace(PUNCT, '$1');
  return key.trim();
}
