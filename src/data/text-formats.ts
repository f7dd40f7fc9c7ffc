/**
 * Incremental parsers for the text formats. Each takes decoded text in arbitrary chunks (`push`),
 * calls `onRow(row, line)` for every row as soon as it is complete and `onMalformed(line, message)`
 * for rows that do not parse (the rest is kept). Memory is bounded by the longest row.
 */

export type RowSink = (row: Record<string, unknown>, line: number) => void;
export type MalformedSink = (line: number, message: string) => void;

export interface TextParser {
  push(text: string): void;
  end(): void;
}

function describeJsonError(e: unknown): string {
  return e instanceof Error ? e.message.replace(/\s+/g, ' ').slice(0, 200) : String(e);
}

/** JSON Lines: one object per line; blank lines ignored. */
export class JsonlParser implements TextParser {
  private parts: string[] = [];
  private line = 0;
  constructor(
    private onRow: RowSink,
    private onMalformed: MalformedSink,
  ) {}

  push(text: string): void {
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      if (nl < 0) break;
      let piece = text.slice(from, nl);
      if (this.parts.length) {
        this.parts.push(piece);
        piece = this.parts.join('');
        this.parts = [];
      }
      this.handle(piece);
      from = nl + 1;
    }
    if (from < text.length) this.parts.push(text.slice(from));
  }

  end(): void {
    if (this.parts.length) {
      const rest = this.parts.join('');
      this.parts = [];
      this.handle(rest);
    }
  }

  private handle(raw: string): void {
    this.line++;
    const s = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (s.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      this.onMalformed(this.line, `invalid JSON: ${describeJsonError(e)}`);
      return;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.onMalformed(
        this.line,
        `expected a JSON object, found ${Array.isArray(v) ? 'an array' : typeof v}`,
      );
      return;
    }
    this.onRow(v as Record<string, unknown>, this.line);
  }
}

const enum J {
  Before,
  Between, // after '[' or ',' — expecting an element (or ']')
  InElement,
  AfterElement, // expecting ',' or ']'
  After,
}

/**
 * A JSON array of objects, split into elements by a streaming scanner and parsed one element at a
 * time, so a bad element is reported with the line it starts on and the others are kept.
 */
export class JsonArrayParser implements TextParser {
  private state = J.Before;
  private line = 1;
  private depth = 0;
  private inString = false;
  private escape = false;
  private parts: string[] = [];
  private elementLine = 1;
  private trailingReported = false;
  constructor(
    private onRow: RowSink,
    private onMalformed: MalformedSink,
  ) {}

  push(text: string): void {
    let start = -1; // start of the current element's text inside this chunk
    if (this.state === J.InElement) start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) this.line++;
      switch (this.state) {
        case J.Before:
          if (c === 0x5b /* [ */) this.state = J.Between;
          else if (!isWs(c) && c !== 0xfeff) {
            this.onMalformed(this.line, 'expected "[" at the start of a JSON array');
            this.state = J.After;
            this.trailingReported = true;
          }
          break;
        case J.Between:
        case J.AfterElement:
          if (isWs(c)) break;
          if (c === 0x5d /* ] */) {
            this.state = J.After;
            break;
          }
          if (c === 0x2c /* , */) {
            if (this.state === J.Between) this.onMalformed(this.line, 'empty array element');
            this.state = J.Between;
            break;
          }
          if (this.state === J.AfterElement)
            this.onMalformed(this.line, 'missing "," between array elements');
          this.state = J.InElement;
          this.elementLine = this.line;
          this.depth = 0;
          this.inString = false;
          this.escape = false;
          start = i;
          i--; // re-scan this character inside the element
          if (c === 10) this.line--;
          break;
        case J.InElement:
          if (this.inString) {
            if (this.escape) this.escape = false;
            else if (c === 0x5c) this.escape = true;
            else if (c === 0x22) this.inString = false;
            break;
          }
          if (c === 0x22) this.inString = true;
          else if (c === 0x7b || c === 0x5b) this.depth++;
          else if (c === 0x7d || c === 0x5d) {
            if (this.depth === 0) {
              // the closing bracket of the array itself
              this.finishElement(text.slice(start, i));
              start = -1;
              this.state = J.After;
            } else this.depth--;
          } else if (c === 0x2c && this.depth === 0) {
            this.finishElement(text.slice(start, i));
            start = -1;
            this.state = J.Between;
          }
          break;
        case J.After:
          if (!isWs(c) && !this.trailingReported) {
            this.onMalformed(this.line, 'unexpected text after the end of the JSON array');
            this.trailingReported = true;
          }
          break;
      }
    }
    if (this.state === J.InElement && start >= 0) this.parts.push(text.slice(start));
  }

  end(): void {
    if (this.state === J.InElement) {
      this.finishElement('');
      this.onMalformed(this.line, 'the JSON array is not closed with "]"');
    } else if (this.state === J.Between || this.state === J.AfterElement)
      this.onMalformed(this.line, 'the JSON array is not closed with "]"');
  }

  private finishElement(tail: string): void {
    this.parts.push(tail);
    const s = this.parts.join('');
    this.parts = [];
    this.state = J.AfterElement;
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      this.onMalformed(this.elementLine, `invalid JSON element: ${describeJsonError(e)}`);
      return;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.onMalformed(
        this.elementLine,
        `expected a JSON object, found ${Array.isArray(v) ? 'an array' : typeof v}`,
      );
      return;
    }
    this.onRow(v as Record<string, unknown>, this.elementLine);
  }
}

function isWs(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

const enum C {
  FieldStart,
  Unquoted,
  Quoted,
  QuoteInQuoted, // saw a '"' inside a quoted field: either an escaped quote or the end of the field
}

/**
 * RFC 4180 CSV/TSV: quoted fields may contain delimiters, newlines and doubled quotes; CRLF or LF.
 * The first row is the header. Rows with the wrong number of fields are reported and skipped.
 */
export class CsvParser implements TextParser {
  private state = C.FieldStart;
  private field: string[] = [];
  private fields: string[] = [];
  private header: string[] | null = null;
  private line = 1;
  private rowLine = 1;
  private rowProblem: string | null = null;
  private readonly delim: number;
  constructor(
    delimiter: ',' | '\t' | ';',
    private onRow: RowSink,
    private onMalformed: MalformedSink,
    private onHeader?: (columns: string[]) => void,
  ) {
    this.delim = delimiter.charCodeAt(0);
  }

  push(text: string): void {
    const n = text.length;
    let i = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      switch (this.state) {
        case C.FieldStart:
          if (c === 0x22) {
            this.state = C.Quoted;
            i++;
            break;
          }
          this.state = C.Unquoted;
          break;
        case C.Unquoted: {
          // Scan to the next delimiter, newline or (stray) quote in one go.
          let j = i;
          while (j < n) {
            const d = text.charCodeAt(j);
            if (d === this.delim || d === 10) break;
            j++;
          }
          if (j > i) this.field.push(text.slice(i, j));
          if (j === n) {
            i = n;
            break;
          }
          if (text.charCodeAt(j) === this.delim) this.endField();
          else this.endRow(true);
          i = j + 1;
          break;
        }
        case C.Quoted: {
          const q = text.indexOf('"', i);
          const j = q < 0 ? n : q;
          const piece = text.slice(i, j);
          for (let k = piece.indexOf('\n'); k >= 0; k = piece.indexOf('\n', k + 1)) this.line++;
          if (piece) this.field.push(piece);
          if (q < 0) {
            i = n;
            break;
          }
          this.state = C.QuoteInQuoted;
          i = q + 1;
          break;
        }
        case C.QuoteInQuoted:
          if (c === 0x22) {
            this.field.push('"');
            this.state = C.Quoted;
            i++;
          } else if (c === this.delim) {
            this.endField();
            i++;
          } else if (c === 10) {
            this.endRow(false);
            i++;
          } else if (c === 13) {
            i++; // CR before LF after a closing quote
          } else {
            this.rowProblem ??= 'text after a closing quote';
            this.state = C.Unquoted;
          }
          break;
      }
    }
  }

  end(): void {
    if (this.state === C.Quoted) {
      this.onMalformed(this.rowLine, 'unterminated quoted field (the rest of the file is inside it)');
      this.reset();
      return;
    }
    if (this.state === C.FieldStart && this.fields.length === 0 && this.field.length === 0) return;
    this.endRow(this.state === C.Unquoted);
  }

  private endField(): void {
    this.fields.push(this.field.join(''));
    this.field = [];
    this.state = C.FieldStart;
  }

  private endRow(unquotedLast: boolean): void {
    let last = this.field.join('');
    if (unquotedLast && last.endsWith('\r')) last = last.slice(0, -1);
    this.fields.push(last);
    this.field = [];
    const fields = this.fields;
    const rowLine = this.rowLine;
    const problem = this.rowProblem;
    this.line++;
    this.reset();
    if (fields.length === 1 && fields[0] === '') return; // blank line
    if (this.header === null) {
      this.header = fields.map((f, k) => f.replace(/^\uFEFF/, '').trim() || `column${k + 1}`);
      this.onHeader?.(this.header);
      return;
    }
    if (problem) {
      this.onMalformed(rowLine, problem);
      return;
    }
    if (fields.length !== this.header.length) {
      this.onMalformed(rowLine, `expected ${this.header.length} fields, found ${fields.length}`);
      return;
    }
    const row: Record<string, unknown> = {};
    for (let k = 0; k < fields.length; k++) row[this.header[k]] = fields[k];
    this.onRow(row, rowLine);
  }

  private reset(): void {
    this.fields = [];
    this.field = [];
    this.state = C.FieldStart;
    this.rowLine = this.line;
    this.rowProblem = null;
  }
}
