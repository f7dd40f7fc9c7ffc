import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNodeContext } from '../engine/gpu/node.ts';
import { chooseThreshold, evaluateScores, type ScoredExample } from '../train/evaluate.ts';
import { openDetector } from './detect.ts';
import { parseFlags, probabilityFlag, UsageError, type Command } from './flags.ts';
import { readRecords } from './inputs.ts';
import { fmt, metricsSummary, scoresCsv } from './report.ts';

const HELP = `Usage: npm run vulnlab -- eval --model demo|DIR|HUB_ID --adapter DIR --data FILE [options]

  --model demo|DIR|ID  the base model the adapter was trained on
  --adapter DIR        a PEFT adapter folder (adapter_config.json, adapter_model.safetensors), e.g. RUN/adapter
  --data FILE          labelled Java functions (any format of train); every record is scored
  --split NAME         score only the records whose split field is NAME (train, validation or test)
  --threshold P        decision threshold (default: the one the run chose on validation, from the
                       adapter's vulnlab_detector.json; else the best-F1 threshold on this data, labelled so)
  --out DIR            write metrics.json and scores.csv there`;

export const evaluate: Command = {
  name: 'eval',
  summary: 'score a labelled dataset with a trained adapter; ROC AUC, PR AUC, F1 and scores',
  help: () => HELP,
  async run(args) {
    const { values } = parseFlags(
      args,
      {
        model: { type: 'string', default: 'demo' },
        adapter: { type: 'string' },
        data: { type: 'string' },
        split: { type: 'string' },
        threshold: { type: 'string' },
        out: { type: 'string' },
      },
      HELP,
    );
    if (!values.adapter) throw new UsageError('--adapter DIR is required.', HELP);
    if (!values.data) throw new UsageError('--data FILE is required.', HELP);
    if (values.split && !['train', 'validation', 'test'].includes(values.split)) {
      throw new UsageError(`--split must be train, validation or test (got "${values.split}").`, HELP);
    }
    const fixed = probabilityFlag('threshold', values.threshold, HELP);
    const usage = HELP.split('\n')[0];
    const all = await readRecords(values.data, 'data', usage);
    // Indices into the whole file, so scores.csv lines up with the file whatever --split picks.
    const picked = all.flatMap((r, i) => (!values.split || r.split === values.split ? [i] : []));
    const records = picked.map((i) => all[i]);
    if (records.length === 0) {
      throw new UsageError(
        `${values.data} has no functions${values.split ? ` in split ${values.split}` : ''}.`,
        HELP,
      );
    }
    const ctx = await createNodeContext();
    try {
      const { detector, settings, examples } = await openDetector(ctx, values.model, values.adapter, usage);
      try {
        const scored = (await detector.score(examples(records))).map((s) => ({
          ...s,
          exampleIndex: picked[s.exampleIndex],
        }));
        const threshold = fixed ?? settings?.threshold ?? chooseThreshold(scored);
        const source =
          fixed !== undefined
            ? 'flag'
            : settings
              ? 'validation (from the run)'
              : 'tuned on this data (optimistic)';
        const metrics = evaluateScores(scored, threshold, { intervals: true, seed: 0 });
        console.log(
          `${metrics.n} functions (${metrics.positives} vulnerable): ROC AUC ${fmt(metrics.rocAuc)}, PR AUC ${fmt(metrics.prAuc)}, F1 ${metrics.atThreshold.f1.toFixed(3)} at threshold ${threshold.toFixed(3)} (${source})`,
        );
        if (values.out) {
          await mkdir(values.out, { recursive: true });
          const report = {
            model: values.model,
            adapter: values.adapter,
            data: values.data,
            threshold_source: source,
            eval: metricsSummary(metrics, threshold),
          };
          await writeFile(join(values.out, 'metrics.json'), JSON.stringify(report, null, 2) + '\n');
          await writeFile(join(values.out, 'scores.csv'), scoresCsv(bySplit(scored, all)));
          console.log(`metrics.json and scores.csv in ${values.out}`);
        }
      } finally {
        detector.destroy();
      }
    } finally {
      ctx.destroy();
    }
  },
};

/** Scores grouped by each record's split field ("data" when it has none), in record order. */
function bySplit(scored: readonly ScoredExample[], records: readonly { split?: string }[]) {
  const groups = new Map<string, ScoredExample[]>();
  for (const s of scored) {
    const split = records[s.exampleIndex].split ?? 'data';
    if (!groups.has(split)) groups.set(split, []);
    groups.get(split)!.push(s);
  }
  return [...groups].map(([split, examples]) => ({ split, examples }));
}
