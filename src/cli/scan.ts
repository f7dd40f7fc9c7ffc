import { readFile } from 'node:fs/promises';
import { createNodeContext } from '../engine/gpu/node.ts';
import { extractJavaMethods } from '../data/java.ts';
import type { DataRecord } from '../data/types.ts';
import { openDetector } from './detect.ts';
import { parseFlags, probabilityFlag, UsageError, type Command } from './flags.ts';

const HELP = `Usage: npm run vulnlab -- scan --model demo|DIR|HUB_ID --adapter DIR FILE.java...

  --model demo|DIR|ID  the base model the adapter was trained on
  --adapter DIR        a PEFT adapter folder, e.g. RUN/adapter
  --threshold P        flag methods at or above P (default: the run's validation threshold)
  --json               print JSON instead of a table

Every method and constructor of every file gets the probability that it is vulnerable, riskiest first.
A file that does not parse as Java is reported and skipped.`;

interface ScannedMethod {
  file: string;
  line: number;
  method: string;
  probability: number;
  flagged: boolean | null;
}

export const scan: Command = {
  name: 'scan',
  summary: 'probability of being vulnerable for every method of Java files, riskiest first',
  help: () => HELP,
  async run(args) {
    const { values, positionals } = parseFlags(
      args,
      {
        model: { type: 'string', default: 'demo' },
        adapter: { type: 'string' },
        threshold: { type: 'string' },
        json: { type: 'boolean' },
      },
      HELP,
    );
    if (!values.adapter) throw new UsageError('--adapter DIR is required.', HELP);
    if (positionals.length === 0) throw new UsageError('Name at least one .java file to scan.', HELP);
    const fixed = probabilityFlag('threshold', values.threshold, HELP);
    const methods: Omit<ScannedMethod, 'probability' | 'flagged'>[] = [];
    const records: DataRecord[] = [];
    let failures = 0;
    for (const file of positionals) {
      let source: string;
      try {
        source = await readFile(file, 'utf8');
      } catch (error) {
        throw new UsageError(`Cannot read ${file}: ${(error as Error).message}`, HELP.split('\n')[0]);
      }
      const extracted = extractJavaMethods(source);
      if (!extracted.ok) {
        failures++;
        console.warn(`${file}: not parsed as Java (${extracted.message}); skipped.`);
        continue;
      }
      for (const m of extracted.methods) {
        methods.push({ file, line: m.line, method: [...m.enclosing, m.name].join('.') });
        records.push({ code: m.code, label: 0 });
      }
    }
    if (records.length === 0) {
      throw new UsageError(
        failures ? 'No file could be parsed as Java.' : 'The files hold no methods.',
        'Scan .java source files with at least one method or constructor.',
      );
    }
    const ctx = await createNodeContext();
    try {
      const open = await openDetector(ctx, values.model, values.adapter, HELP.split('\n')[0]);
      try {
        const threshold = fixed ?? open.settings?.threshold;
        const scored = await open.detector.score(open.examples(records));
        const results: ScannedMethod[] = scored
          .map((s) => ({
            ...methods[s.exampleIndex],
            probability: s.score,
            flagged: threshold === undefined ? null : s.score >= threshold,
          }))
          .sort((a, b) => b.probability - a.probability);
        if (values.json) {
          console.log(JSON.stringify({ threshold: threshold ?? null, methods: results }, null, 2));
          return;
        }
        console.log(
          `${results.length} methods${threshold === undefined ? '' : `; flagged at p ≥ ${threshold.toFixed(3)}`}`,
        );
        for (const r of results) {
          const flag = r.flagged ? '!' : ' ';
          console.log(`${flag} ${r.probability.toFixed(4)}  ${r.file}:${r.line}  ${r.method}`);
        }
      } finally {
        open.detector.destroy();
      }
    } finally {
      ctx.destroy();
    }
  },
};
