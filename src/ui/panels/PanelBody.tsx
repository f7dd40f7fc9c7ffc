import type { PanelId } from '../store.ts';
import { ModelPanel } from './ModelPanel.tsx';
import { DataPanel } from './DataPanel.tsx';
import { TrainPanel } from './TrainPanel.tsx';
import { ResultsPanel } from './ResultsPanel.tsx';
import { ScanPanel } from './ScanPanel.tsx';

const PURPOSE: Record<PanelId, string> = {
  model:
    'Pick a StarCoder/WizardCoder (GPT-BigCode) model: the embedded demo model, a Hugging Face repo id, or a local folder. The memory it needs is checked against this adapter.',
  data: 'Upload Java functions labelled vulnerable or not: JSONL, JSON, CSV/TSV, Parquet, a zip or .java files. Your code stays on this machine: it is read, tokenized and packed in the browser.',
  train:
    'LoRA finetuning with focal loss and batch packing, as in “Finetuning Large Language Models for Vulnerability Detection”. Tune learning rate, focal γ, class weight and clipping live; loss and ROC curves redraw as the run goes.',
  results: 'Compare runs side by side: ROC and PR curves, metrics with 95% intervals, and exports.',
  scan: 'Paste Java code and see each method’s probability of being vulnerable, riskiest first.',
};

export function PanelBody({ panel }: { panel: PanelId }) {
  return (
    <div className="panel-body">
      <p className="purpose">{PURPOSE[panel]}</p>
      {panel === 'model' && <ModelPanel />}
      {panel === 'data' && <DataPanel />}
      {panel === 'train' && <TrainPanel />}
      {panel === 'results' && <ResultsPanel />}
      {panel === 'scan' && <ScanPanel />}
    </div>
  );
}
