import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createNodeContext } from '../engine/gpu/node.ts';
import { normalizeCode } from '../data/normalize.ts';
import type { DataRecord } from '../data/types.ts';
import { inspectModel } from '../io/load.ts';
import { resolveConfig } from '../train/config.ts';
import { DETECTOR_SETTINGS_FILE } from '../train/export.ts';
import type { ScoredExample } from '../train/evaluate.ts';
import {
  DEFAULT_IG_STEPS,
  lineAttributions,
  topLines,
  type AttributionMethod,
  type ExplainOptions,
} from '../train/explain.ts';
import { codeFrame, codeTokensPerPack } from '../train/prepare.ts';
import type { RunExample } from '../train/run.ts';
import { openDetector, type OpenDetector } from './detect.ts';
import { parseFlags, probabilityFlag, UsageError, type Command } from './flags.ts';
import { modelFiles } from './inputs.ts';
import { stderrProgress, type Progress } from './progress.ts';
import {
  scanJson,
  scanTable,
  truncationNote,
  type ScanIssue,
  type ScannedMethod,
  type ScanReport,
  type Truncation,
} from './report.ts';
import { ERROR_PROBABILITY, scanSarif } from './sarif.ts';
import { readJavaFile, type LocatedMethod } from './scan-files.ts';
import { collectJavaSources, type SourceFile } from './source-tree.ts';

/** Exit status when at least one method is flagged (0 when none is). */
export const EXIT_FLAGGED = 3;

/** Lines reported per explained method. */
const TOP_LINES = 3;
const METHODS: readonly AttributionMethod[] = ['ig', 'grad'];

const HELP = `Usage: npm run vulnlab -- scan --model demo|DIR|HUB_ID --adapter DIR [--format table|json|sarif] [--explain] PATH...

  PATH                 .java files and folders; a folder is walked for *.java files, honouring
                       .gitignore (the repository's above it, its own and nested ones, and
                       .git/info/exclude) and skipping .git; files named here are always scanned
  --model demo|DIR|ID  the base model the adapter was trained on
  --adapter DIR        a PEFT adapter folder, e.g. RUN/adapter
  --threshold P        flag methods at or above P (default: the run's validation threshold)
  --format F           table (default), json, or sarif: SARIF 2.1.0 with one result per flagged
                       method, level "error" from p ≥ ${ERROR_PROBABILITY} (or the threshold, if higher) and
                       "warning" from the threshold up; paths relative to the scanned root
  --json               the same as --format json
  --explain            for each flagged method (every method when no threshold is known), the ${TOP_LINES}
                       lines that drove its score with their share of the attribution: under the
                       method in the table, \`topLines\` in json, \`relatedLocations\` in sarif
  --explain-method M   ig (default): integrated gradients of the log-odds logit(vulnerable) −
                       logit(not) from an all-pad baseline, lines ranked by what pushes toward
                       "vulnerable"; grad: gradient × input (unsigned, one backward pass, faster)
  --ig-steps N         integrated-gradients steps (default ${DEFAULT_IG_STEPS}; cost ≈ N + 2 passes per batch)

Every method and constructor gets the probability that it is vulnerable, riskiest first.
Files that cannot be read, are not UTF-8 or do not parse as Java are reported and skipped; a method
longer than the model's context is scored on the part the run's truncation keeps and marked (~), or
skipped if the run drops such functions. These notes go to stderr, and into the json and sarif
reports. A progress bar shows on stderr when it is a terminal.

Exit status: 0 no method flagged, ${EXIT_FLAGGED} at least one method flagged, 1 failure while running,
2 usage error (bad flag, missing path or adapter, no method found, sarif without a threshold).`;

const FORMATS = ['table', 'json', 'sarif'] as const;
type Format = (typeof FORMATS)[number];

/** Functions scored per GPU call in packed mode, so the progress bar moves (packed scores do not depend on neighbours). */
const SCORE_CHUNK = 256;

function packageVersion(): string {
  const file = new URL('../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

interface Pending {
  file: SourceFile;
  located: LocatedMethod;
  name: string;
}

/** Scores in chunks when the run packs functions without cross-attention, in one call otherwise. */
async function scoreAll(
  open: OpenDetector,
  examples: RunExample[],
  chunked: boolean,
  progress: Progress,
): Promise<ScoredExample[]> {
  progress.start('scoring', examples.length);
  if (!chunked) {
    const scored = await open.detector.score(examples);
    progress.update(examples.length);
    return scored;
  }
  const scored: ScoredExample[] = [];
  for (let i = 0; i < examples.length; i += SCORE_CHUNK) {
    scored.push(...(await open.detector.score(examples.slice(i, i + SCORE_CHUNK))));
    progress.update(Math.min(examples.length, i + SCORE_CHUNK));
  }
  return scored;
}

/**
 * Which scored methods were cut to the context. Only a method whose tokens fill the whole context can
 * have been: for those (if any), the model's tokenizer is read again to count the method's tokens.
 */
async function truncations(
  model: string,
  open: OpenDetector,
  examples: readonly RunExample[],
  records: readonly DataRecord[],
): Promise<Map<number, Truncation>> {
  const ntp = open.detector.answers !== undefined;
  const packLength = open.detector.packLength;
  // A pack holds the framed code (BOS, the prompt for ntp) and one separator; ntp examples leave out the answer token.
  const full = packLength - 1 - (ntp ? 1 : 0);
  const candidates = examples.filter((e) => e.tokens.length >= full);
  const found = new Map<number, Truncation>();
  if (candidates.length === 0) return found;
  const settings = open.settings;
  const config = resolveConfig(
    settings ? { truncation: settings.truncation, normalize: settings.normalize } : {},
  );
  const { tokenizer } = await inspectModel(modelFiles(model));
  if (!tokenizer) return found;
  const capacity = codeTokensPerPack(packLength, codeFrame(tokenizer, ntp ? 'ntp' : 'cls'));
  const kept = config.truncation === 'tail' ? 'tail' : 'head';
  for (const e of candidates) {
    const total = tokenizer.encode(normalizeCode(records[e.exampleIndex].code, config.normalize)).length;
    if (total > capacity) found.set(e.exampleIndex, { kept, scoredTokens: capacity, totalTokens: total });
  }
  return found;
}

/**
 * The lines that drove each explained method's score: token attributions from the detector, mapped to
 * the method's lines (1-based, in its file) through the tokenizer and the run's normalization.
 */
async function explainLines(
  model: string,
  open: OpenDetector,
  explained: readonly { example: RunExample; code: string; startLine: number }[],
  options: ExplainOptions,
  progress: Progress,
): Promise<Map<number, NonNullable<ScannedMethod['topLines']>>> {
  const found = new Map<number, NonNullable<ScannedMethod['topLines']>>();
  if (explained.length === 0) return found;
  const { tokenizer } = await inspectModel(modelFiles(model));
  if (!tokenizer) return found;
  const settings = open.settings;
  const config = resolveConfig(
    settings ? { truncation: settings.truncation, normalize: settings.normalize } : {},
  );
  const ntp = open.detector.answers !== undefined;
  const frame = codeFrame(tokenizer, ntp ? 'ntp' : 'cls');
  const before = frame.before.length;
  const after = frame.after.length;
  progress.start('explaining', explained.length);
  const attributions = await open.detector.explain(
    explained.map((e) => e.example),
    options,
  );
  progress.update(explained.length);
  explained.forEach((e, i) => {
    const tokens = e.example.tokens;
    const lines = lineAttributions({
      original: e.code,
      normalized: normalizeCode(e.code, config.normalize),
      normalize: config.normalize,
      codeTokens: tokens.subarray(before, tokens.length - after),
      attributions: attributions[i].tokens.subarray(before, tokens.length - after),
      decode: (ids) => tokenizer.decode(ids),
    });
    found.set(
      e.example.exampleIndex,
      topLines(lines, TOP_LINES).map((l) => ({
        startLine: e.startLine + l.line,
        weight: Math.round(l.share * 1000) / 1000,
      })),
    );
  });
  return found;
}

export const scan: Command = {
  name: 'scan',
  summary: 'probability of being vulnerable for every method of Java files and folders, riskiest first',
  help: () => HELP,
  async run(args) {
    const { values, positionals } = parseFlags(
      args,
      {
        model: { type: 'string', default: 'demo' },
        adapter: { type: 'string' },
        threshold: { type: 'string' },
        format: { type: 'string' },
        json: { type: 'boolean' },
        explain: { type: 'boolean' },
        'explain-method': { type: 'string' },
        'ig-steps': { type: 'string' },
      },
      HELP,
    );
    const usage = HELP.split('\n')[0];
    if (!values.adapter) throw new UsageError('--adapter DIR is required.', HELP);
    if (positionals.length === 0)
      throw new UsageError('Name at least one .java file or folder to scan.', HELP);
    const format = (values.format ?? (values.json ? 'json' : 'table')) as Format;
    if (!FORMATS.includes(format)) {
      throw new UsageError(`--format must be one of ${FORMATS.join(', ')} (got "${values.format}").`, HELP);
    }
    if (values.json && format !== 'json') {
      throw new UsageError(`--json and --format ${format} contradict each other.`, HELP);
    }
    const fixed = probabilityFlag('threshold', values.threshold, HELP);
    const explainMethod = (values['explain-method'] ?? 'ig') as AttributionMethod;
    if (!METHODS.includes(explainMethod)) {
      throw new UsageError(
        `--explain-method must be one of ${METHODS.join(', ')} (got "${values['explain-method']}").`,
        HELP,
      );
    }
    const igSteps = values['ig-steps'] === undefined ? DEFAULT_IG_STEPS : Number(values['ig-steps']);
    if (!Number.isInteger(igSteps) || igSteps < 1 || igSteps > 1024) {
      throw new UsageError(
        `--ig-steps must be a whole number from 1 to 1024 (got "${values['ig-steps']}").`,
        HELP,
      );
    }
    if (!values.explain && (values['explain-method'] !== undefined || values['ig-steps'] !== undefined)) {
      throw new UsageError('--explain-method and --ig-steps go with --explain.', HELP);
    }
    const sarifWithoutThreshold = () =>
      new UsageError(
        'SARIF lists flagged methods, and this adapter has no threshold.',
        'Pass --threshold P, or scan with an adapter exported from a run (it has vulnlab_detector.json).',
      );
    // Said before the model is loaded; the settings file is read (and checked) with the adapter.
    if (
      format === 'sarif' &&
      fixed === undefined &&
      !existsSync(join(values.adapter, DETECTOR_SETTINGS_FILE))
    ) {
      throw sarifWithoutThreshold();
    }
    const progress = stderrProgress();

    const tree = await collectJavaSources(positionals, usage);
    const issues: ScanIssue[] = [];
    const report = (issue: ScanIssue) => {
      issues.push(issue);
      progress.warn(`${issue.file}${issue.region ? `:${issue.region.startLine}` : ''}: ${issue.message}`);
    };
    for (const p of tree.problems) {
      report({
        kind: 'unreadable',
        file: p.display,
        uri: p.uri,
        message: `cannot be listed (${p.message}); skipped.`,
      });
    }
    if (tree.files.length === 0) {
      throw new UsageError(
        `No .java file found in ${positionals.join(', ')}.`,
        'Name .java files or folders holding some (.gitignore’d files are left out).',
      );
    }

    const pending: Pending[] = [];
    let failures = 0;
    progress.start('reading', tree.files.length);
    for (const [i, file] of tree.files.entries()) {
      const read = await readJavaFile(file.path);
      progress.update(i + 1);
      if (!read.ok) {
        failures++;
        const region = read.line
          ? { startLine: read.line, ...(read.column ? { startColumn: read.column } : {}) }
          : undefined;
        report({ kind: read.kind, file: file.display, uri: file.uri, message: read.message, region });
        continue;
      }
      for (const located of read.methods) {
        pending.push({ file, located, name: [...located.method.enclosing, located.method.name].join('.') });
      }
    }
    progress.done();
    if (pending.length === 0) {
      throw new UsageError(
        failures === tree.files.length ? 'No file could be parsed as Java.' : 'The files hold no methods.',
        'Scan .java source files with at least one method or constructor.',
      );
    }

    const records: DataRecord[] = pending.map((p) => ({ code: p.located.method.code, label: 0 }));
    const ctx = await createNodeContext();
    let methods: ScannedMethod[];
    let threshold: number | undefined;
    try {
      const open = await openDetector(ctx, values.model, values.adapter, usage);
      try {
        threshold = fixed ?? open.settings?.threshold;
        if (format === 'sarif' && threshold === undefined) throw sarifWithoutThreshold();
        const examples = open.examples(records);
        const scored = await scoreAll(open, examples, open.settings?.batching !== 'paper', progress);
        const truncated = await truncations(values.model, open, examples, records);
        progress.done();
        let explainedLines = new Map<number, NonNullable<ScannedMethod['topLines']>>();
        if (values.explain) {
          const byIndex = new Map(scored.map((s) => [s.exampleIndex, s.score]));
          const explained = examples
            .filter((e) => threshold === undefined || byIndex.get(e.exampleIndex)! >= threshold)
            .map((e) => ({
              example: e,
              code: pending[e.exampleIndex].located.method.code,
              startLine: pending[e.exampleIndex].located.region.startLine,
            }));
          explainedLines = await explainLines(
            values.model,
            open,
            explained,
            { method: explainMethod, steps: igSteps },
            progress,
          );
          progress.done();
        }
        const scoredIndex = new Set(examples.map((e) => e.exampleIndex));
        pending.forEach((p, i) => {
          if (scoredIndex.has(i)) return;
          report({
            kind: 'too-long',
            file: p.file.display,
            uri: p.file.uri,
            method: p.name,
            region: p.located.region,
            message: `${p.name} is longer than the model's context (${open.detector.packLength} tokens) and the run drops such functions; not scored.`,
          });
        });
        methods = scored.map((s) => {
          // exampleIndex is the record's index, i.e. the method's place in `pending`.
          const p = pending[s.exampleIndex];
          const cut = truncated.get(s.exampleIndex);
          return {
            file: p.file.display,
            uri: p.file.uri,
            line: p.located.region.startLine,
            region: p.located.region,
            method: p.name,
            probability: s.score,
            flagged: threshold === undefined ? null : s.score >= threshold,
            ...(cut && { truncated: cut }),
            ...(explainedLines.has(s.exampleIndex) && { topLines: explainedLines.get(s.exampleIndex) }),
          };
        });
        for (const m of methods) {
          if (!m.truncated) continue;
          report({
            kind: 'truncated',
            file: m.file,
            uri: m.uri,
            method: m.method,
            region: m.region,
            message: `${m.method} is longer than the model's context; ${truncationNote(m.truncated)}.`,
          });
        }
        methods.sort((a, b) => b.probability - a.probability);
      } finally {
        open.detector.destroy();
      }
    } finally {
      progress.done();
      ctx.destroy();
    }

    const result: ScanReport = {
      root: tree.root,
      model: values.model,
      adapter: resolve(values.adapter),
      threshold: threshold ?? null,
      ...(values.explain && {
        explain: {
          method: explainMethod,
          ...(explainMethod === 'ig' && { steps: igSteps }),
          score: 'logit(vulnerable) − logit(not)',
        },
      }),
      files: tree.files.length,
      methods,
      issues,
    };
    if (format === 'sarif') {
      console.log(JSON.stringify(scanSarif({ ...result, threshold: threshold! }, packageVersion()), null, 2));
    } else if (format === 'json') {
      console.log(scanJson(result));
    } else {
      console.log(scanTable(result));
    }
    return methods.some((m) => m.flagged) ? EXIT_FLAGGED : 0;
  },
};
