/** Shared types of the data layer (no DOM, no React: runs in a Web Worker and in Node). */

export type Label = 0 | 1;
export type SplitName = 'train' | 'validation' | 'test';
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'validation', 'test'];

/** One labelled function. `code` is the function's source text; everything else is optional metadata. */
export interface DataRecord {
  code: string;
  /** 1 = vulnerable, 0 = not vulnerable (safe / fixed). */
  label: Label;
  /** Normalized to `CWE-<n>` when a number can be found, otherwise kept as given. */
  cwe?: string;
  project?: string;
  commit?: string;
  file?: string;
  split?: SplitName;
  id?: string;
  /** Per-sample loss weight (the paper weights the informative part of the data 3.0). */
  weight?: number;
}

export type ImportIssueKind =
  | 'malformed' // a line/row that does not parse (bad JSON, wrong CSV field count, unterminated quote)
  | 'missing-field' // code or label absent or empty
  | 'bad-label' // a label value that is not 0/1, true/false, vulnerable/safe/fixed, …
  | 'bad-value' // an optional field with an unusable value (weight not a positive number, unknown split)
  | 'encoding' // bytes that are not valid UTF-8 (decoded with U+FFFD)
  | 'parse-failure' // a .java file java-parser rejects
  | 'unlabelled' // a .java method/file no labelling rule applies to
  | 'skipped-file' // a file in an archive/folder that is not a dataset or Java file
  | 'empty'; // an empty file

export interface ImportIssue {
  kind: ImportIssueKind;
  message: string;
  /** File (inside an archive/folder) the issue is in, when there is more than one. */
  file?: string;
  /** 1-based line number where the offending row starts. */
  line?: number;
}

export type DatasetFormat = 'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet' | 'zip' | 'java';
