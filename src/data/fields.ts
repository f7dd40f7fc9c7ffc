/**
 * Field mapping: which column of a row holds the code, the label and the optional metadata.
 * Auto-detected from common names (case-insensitive), with an explicit override.
 */
import type { DataRecord, Label, SplitName } from './types';

export interface FieldMapping {
  code: string;
  label: string;
  cwe?: string;
  project?: string;
  commit?: string;
  file?: string;
  split?: string;
  id?: string;
  weight?: string;
}

export type FieldName = keyof FieldMapping;

/** Candidate column names per field, in order of preference (compared case-insensitively). */
export const FIELD_CANDIDATES: Record<FieldName, readonly string[]> = {
  code: ['code', 'func', 'source', 'function', 'method', 'func_code', 'source_code', 'code_snippet'],
  label: ['target', 'label', 'vulnerable', 'is_vulnerable', 'bug', 'vul', 'is_vul', 'vulnerability'],
  cwe: ['cwe', 'cwe_id', 'cwe_ids', 'cwe id', 'cwes'],
  project: ['project', 'repo', 'repository', 'repo_name', 'project_name'],
  commit: ['commit', 'commit_id', 'commit_hash', 'commit_sha', 'sha'],
  file: ['file', 'file_name', 'filename', 'path', 'file_path'],
  split: ['split', 'partition', 'set', 'subset', 'fold'],
  id: ['id', 'idx', 'index', 'uid', 'sample_id'],
  weight: ['weight', 'sample_weight', 'weights'],
};

const FIELD_NAMES = Object.keys(FIELD_CANDIDATES) as FieldName[];

export interface MappingResult {
  /** Complete when `missing` is empty. */
  mapping: Partial<FieldMapping>;
  missing: ('code' | 'label')[];
}

/**
 * Map the columns of a dataset to record fields. An override names the column for a field
 * (exact name first, then case-insensitive); an override naming a column that does not exist
 * leaves the field unmapped (reported through `missing` for code/label).
 */
export function detectFieldMapping(
  columns: readonly string[],
  override?: Partial<FieldMapping>,
): MappingResult {
  const byLower = new Map<string, string>();
  for (const c of columns) if (!byLower.has(c.toLowerCase().trim())) byLower.set(c.toLowerCase().trim(), c);
  const used = new Set<string>();
  const mapping: Partial<FieldMapping> = {};
  // Overrides first so that auto-detection does not steal their columns.
  for (const f of FIELD_NAMES) {
    const want = override?.[f];
    if (want === undefined) continue;
    const col = columns.includes(want) ? want : byLower.get(want.toLowerCase().trim());
    if (col !== undefined) {
      mapping[f] = col;
      used.add(col);
    }
  }
  for (const f of FIELD_NAMES) {
    if (override?.[f] !== undefined) continue;
    for (const cand of FIELD_CANDIDATES[f]) {
      const col = byLower.get(cand);
      if (col !== undefined && !used.has(col)) {
        mapping[f] = col;
        used.add(col);
        break;
      }
    }
  }
  const missing: ('code' | 'label')[] = [];
  if (mapping.code === undefined) missing.push('code');
  if (mapping.label === undefined) missing.push('label');
  return { mapping, missing };
}

export interface LabelValues {
  /** Extra strings (case-insensitive) meaning vulnerable. */
  positive?: readonly string[];
  /** Extra strings (case-insensitive) meaning not vulnerable. */
  negative?: readonly string[];
}

const POSITIVE = [
  '1',
  '1.0',
  'true',
  't',
  'yes',
  'y',
  'vulnerable',
  'vuln',
  'vul',
  'bad',
  'positive',
  'buggy',
];
const NEGATIVE = [
  '0',
  '0.0',
  'false',
  'f',
  'no',
  'n',
  'safe',
  'fixed',
  'benign',
  'clean',
  'good',
  'negative',
  'non-vulnerable',
  'not vulnerable',
  'not_vulnerable',
  'nonvulnerable',
  'patched',
];

export function makeLabelParser(values?: LabelValues): (v: unknown) => Label | string {
  const pos = new Set([...POSITIVE, ...(values?.positive ?? []).map((s) => s.toLowerCase().trim())]);
  const neg = new Set([...NEGATIVE, ...(values?.negative ?? []).map((s) => s.toLowerCase().trim())]);
  return (v: unknown): Label | string => {
    if (typeof v === 'number' || typeof v === 'bigint') {
      if (Number(v) === 1) return 1;
      if (Number(v) === 0) return 0;
      return `label ${String(v)} is not 0 or 1`;
    }
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v === 'string') {
      const s = v.toLowerCase().trim();
      if (s === '') return 'label is empty';
      if (pos.has(s)) return 1;
      if (neg.has(s)) return 0;
      return `unrecognised label "${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
    }
    if (v === null || v === undefined) return 'label is missing';
    return `label of type ${Array.isArray(v) ? 'array' : typeof v} is not 0/1`;
  };
}

/** `CWE-89`, `89`, `["CWE-89"]`, `CWE89` → `CWE-89`; other non-empty strings kept as given. */
export function normalizeCwe(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (Array.isArray(v)) return v.length ? normalizeCwe(v[0]) : undefined;
  if (typeof v === 'number' || typeof v === 'bigint') return `CWE-${String(v)}`;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (s === '' || s === '[]' || /^(none|null|nan|n\/a)$/i.test(s)) return undefined;
  const m = /CWE[-_ ]?(\d+)/i.exec(s) ?? /^\[?\s*['"]?(\d+)['"]?/.exec(s);
  return m ? `CWE-${Number(m[1])}` : s;
}

export function normalizeSplit(v: unknown): SplitName | undefined | null {
  if (v === null || v === undefined) return undefined;
  const s = String(v).toLowerCase().trim();
  if (s === '') return undefined;
  if (s === 'train' || s === 'training' || s === 'trn') return 'train';
  if (s === 'validation' || s === 'valid' || s === 'val' || s === 'dev' || s === 'eval') return 'validation';
  if (s === 'test' || s === 'testing' || s === 'tst' || s === 'holdout') return 'test';
  return null; // present but unknown
}

function asText(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return undefined;
}

export type RowResult =
  | { ok: true; record: DataRecord; warnings: string[] }
  | { ok: false; kind: 'missing-field' | 'bad-label'; message: string };

/** Turn one row (an object keyed by column name) into a record, or say why not. */
export function rowToRecord(
  row: Record<string, unknown>,
  mapping: Partial<FieldMapping>,
  parseLabel: (v: unknown) => Label | string,
): RowResult {
  const code = mapping.code === undefined ? undefined : asText(row[mapping.code]);
  if (code === undefined || code.trim() === '')
    return { ok: false, kind: 'missing-field', message: `no code in field "${mapping.code ?? 'code'}"` };
  const label = parseLabel(mapping.label === undefined ? undefined : row[mapping.label]);
  if (typeof label === 'string') return { ok: false, kind: 'bad-label', message: label };
  const record: DataRecord = { code, label };
  const warnings: string[] = [];
  if (mapping.cwe !== undefined) {
    const cwe = normalizeCwe(row[mapping.cwe]);
    if (cwe !== undefined) record.cwe = cwe;
  }
  for (const f of ['project', 'commit', 'file', 'id'] as const) {
    const col = mapping[f];
    if (col === undefined) continue;
    const t = asText(row[col]);
    if (t !== undefined && t.trim() !== '') record[f] = t.trim();
  }
  if (mapping.split !== undefined) {
    const s = normalizeSplit(row[mapping.split]);
    if (s === null) warnings.push(`unknown split "${String(row[mapping.split])}" ignored`);
    else if (s !== undefined) record.split = s;
  }
  if (mapping.weight !== undefined) {
    const raw = row[mapping.weight];
    if (raw !== null && raw !== undefined && raw !== '') {
      const w = Number(raw);
      if (Number.isFinite(w) && w > 0) record.weight = w;
      else warnings.push(`weight "${String(raw)}" is not a positive number; using 1`);
    }
  }
  return { ok: true, record, warnings };
}
