import type { PanelId } from '../store.ts';

// What each panel is for; the panels' controls arrive with the model, data, training and scan work.
const PURPOSE: Record<PanelId, string[]> = {
  model: [
    'Pick a StarCoder/WizardCoder (GPT-BigCode) model: the embedded demo model, a Hugging Face repo id, or a local folder.',
    'Weights are quantized (q8_0 / q4_0) while they stream in, and the memory they need is checked against this adapter.',
  ],
  data: [
    'Upload Java functions labelled vulnerable or not: JSONL, JSON, CSV/TSV, Parquet, a zip or a folder of .java files.',
    'Your code stays on this machine: it is read, tokenized and packed in the browser.',
  ],
  train: [
    'LoRA finetuning with focal loss and batch packing, as in “Finetuning Large Language Models for Vulnerability Detection”.',
    'Tune learning rate, focal γ and LoRA α live; loss and ROC curves redraw as the run goes.',
  ],
  results: [
    'Compare runs side by side: ROC and PR curves, ROC AUC with intervals, and exports (PEFT adapter, metrics).',
  ],
  scan: ['Paste Java code and see each method’s probability of being vulnerable, riskiest first.'],
};

export function PanelBody({ panel }: { panel: PanelId }) {
  return (
    <div className="panel-body">
      {PURPOSE[panel].map((line) => (
        <p key={line}>{line}</p>
      ))}
    </div>
  );
}
