import { useLab } from './store.ts';
import { ErrorBox } from './errors.tsx';

/** Overrides for the demo config from `?demo={...}` (e.g. a shorter run for tests or a slow GPU). */
export function demoOverrides(): unknown {
  const text = new URLSearchParams(window.location.search).get('demo');
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const WORDS = {
  'loading-model': 'Loading the demo model…',
  'loading-data': 'Loading the demo dataset…',
  training: 'Training — watch the ROC curve rise in the Train panel.',
  done: 'Done. Try the ablations next, or change the learning rate and run again.',
  failed: 'The demo stopped.',
} as const;

/** One click for a class: demo model + demo data + a short run; a second click for the paper's ablations. */
export function ClassroomDemo() {
  const demo = useLab((s) => s.demo);
  const ablation = useLab((s) => s.ablation);
  const live = useLab((s) => s.live);
  const gpu = useLab((s) => s.gpu);
  const runDemo = useLab((s) => s.runDemo);
  const runAblations = useLab((s) => s.runAblations);
  const busy =
    (!!live && ['preparing', 'running', 'paused'].includes(live.phase)) ||
    demo?.status === 'loading-model' ||
    demo?.status === 'loading-data' ||
    ablation?.status === 'running';
  const noGpu = gpu.state === 'unavailable';
  return (
    <section className="demo-bar" aria-label="Classroom demo">
      <button
        type="button"
        className="primary big"
        disabled={busy || noGpu}
        onClick={() => void runDemo(demoOverrides())}
      >
        Run the classroom demo
      </button>
      <button type="button" disabled={busy || noGpu} onClick={() => void runAblations(demoOverrides())}>
        Run the ablations (packing vs padding, focal vs cross-entropy)
      </button>
      <span
        className="demo-status"
        role="status"
        data-testid="demo-status"
        data-state={demo?.status ?? 'idle'}
      >
        {noGpu
          ? 'The demo needs WebGPU (see above).'
          : demo
            ? WORDS[demo.status]
            : 'A tiny model (415 k parameters) trains to flag vulnerable Java functions, its ROC curve redrawn as it goes. On a software WebGPU adapter (SwiftShader, measured): the first point after about a minute, validation ROC AUC 0.9 after about 10 minutes, the whole run about 17; much faster on a GPU.'}
      </span>
      {demo?.status === 'failed' && demo.error && <ErrorBox error={demo.error} />}
    </section>
  );
}
