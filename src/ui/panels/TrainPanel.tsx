import { useMemo } from 'react';
import { CurveChart, SERIES_COLORS, type CurveSeries } from '../charts/CurveChart.tsx';
import { SeriesChart } from '../charts/SeriesChart.tsx';
import { BarsChart } from '../charts/BarsChart.tsx';
import { ErrorBox } from '../errors.tsx';
import { formatDuration, formatMetric, formatPercent } from '../format.ts';
import { latestStep, useLab, type EvalPoint, type FinishedRun, type LiveRun } from '../store.ts';
import { ConfigForm } from './ConfigForm.tsx';
import { AblationView } from './AblationView.tsx';
import { withField } from '../../train/config.ts';

/** Seconds left from the wall-clock rate of the last steps (evaluations included). */
function eta(live: LiveRun): number | undefined {
  // Steps restored from a checkpoint did not arrive here: only arrivals count.
  const steps = live.arrivals;
  if (!live.totalSteps || steps.length < 2) return undefined;
  const recent = steps.slice(-30);
  const first = recent[0];
  const last = recent[recent.length - 1];
  const perStep = (last.at - first.at) / 1000 / Math.max(1, last.step - first.step);
  return Math.max(0, live.totalSteps - last.step) * perStep;
}

function stateText(live: LiveRun): string {
  const step = latestStep(live)?.step ?? 0;
  const of = live.totalSteps ? ` of ${live.totalSteps}` : '';
  switch (live.phase) {
    case 'preparing':
      return 'Preparing: putting the model on the GPU and packing the training data…';
    case 'running':
      return step === 0 || step === live.resumedAt
        ? `Running: ${live.resumedAt ? `resumed at step ${live.resumedAt}, ` : ''}first step…`
        : `Running — step ${step}${of}`;
    case 'paused':
      return `Paused at step ${step}${of}.`;
    case 'stopped':
      return `Stopped at step ${step}${live.finishedId ? '.' : '; running the final evaluation…'}`;
    case 'finished':
      return `Finished: ${step} steps.`;
    case 'failed':
      return 'The run failed.';
  }
}

/** Curves of the first and the latest evaluations (the latest solid), AUC in the legend. */
function curveSeries(evals: EvalPoint[], kind: 'roc' | 'pr'): CurveSeries[] {
  if (!evals.length) return [];
  const picks = evals.length <= 4 ? evals : [evals[0], ...evals.slice(-3)];
  return picks.map((e, i) => {
    const latest = i === picks.length - 1;
    const area = kind === 'roc' ? `AUC ${formatMetric(e.rocAuc)}` : `AP ${formatMetric(e.prAuc)}`;
    return {
      name: `${latest ? 'latest · ' : ''}step ${e.step} · ${area}`,
      points: kind === 'roc' ? e.roc : e.pr,
      color: latest ? SERIES_COLORS[0] : SERIES_COLORS[(i % 6) + 2],
      dashed: !latest,
    };
  });
}

function RunControls({ live }: { live?: LiveRun }) {
  const model = useLab((s) => s.model);
  const data = useLab((s) => s.data);
  const startRun = useLab((s) => s.startRun);
  const controlRun = useLab((s) => s.controlRun);
  const setPanel = useLab((s) => s.setPanel);
  const active = !!live && ['preparing', 'running', 'paused'].includes(live.phase);
  const ready = model.status === 'ready' && data.status === 'ready';
  const remaining = live && live.phase === 'running' ? eta(live) : undefined;
  const step = live && latestStep(live);
  const lastEval = live?.history.evals[live.history.evals.length - 1];
  return (
    <div className="run-controls">
      <div className="buttons" role="group" aria-label="Run controls">
        <button type="button" className="primary" disabled={active || !ready} onClick={() => void startRun()}>
          Start
        </button>
        <button type="button" disabled={live?.phase !== 'running'} onClick={() => void controlRun('pause')}>
          Pause
        </button>
        <button type="button" disabled={live?.phase !== 'paused'} onClick={() => void controlRun('resume')}>
          Resume
        </button>
        <button type="button" disabled={!active} onClick={() => void controlRun('stop')}>
          Stop
        </button>
      </div>
      {!ready && !active && (
        <p className="muted">
          To start, load a{' '}
          <button type="button" className="link" onClick={() => setPanel('model')}>
            model
          </button>{' '}
          and a{' '}
          <button type="button" className="link" onClick={() => setPanel('data')}>
            dataset
          </button>{' '}
          — or run the classroom demo above.
        </p>
      )}
      {live && (
        <div className="run-status" role="status" aria-live="polite">
          <span data-testid="run-state" data-state={live.phase}>
            <strong>{live.name}</strong> — {stateText(live)}
          </span>
          {live.totalSteps && step && (
            <progress max={live.totalSteps} value={step.step} aria-label="run progress" />
          )}
          {remaining !== undefined && <span>about {formatDuration(remaining)} left</span>}
          {step && <span>loss {step.loss.toFixed(4)}</span>}
          {lastEval && <span data-testid="last-auc">validation ROC AUC {formatMetric(lastEval.rocAuc)}</span>}
          {live.wastedShare !== undefined && (
            <span title="share of token slots that hold padding">
              padding {formatPercent(live.wastedShare)}
            </span>
          )}
        </div>
      )}
      {live && (live.lastCheckpoint || live.checkpointsOff) && active && (
        <p className="muted small" data-testid="checkpoint-status">
          {live.lastCheckpoint &&
            `Last checkpoint at step ${live.lastCheckpoint.step}, kept in this browser: a reload or a GPU reset resumes from it. `}
          {!live.checkpointsOff &&
            (live.config.checkpointEvery > 0
              ? `A checkpoint every ${live.config.checkpointEvery} steps and whenever paused.`
              : 'A checkpoint whenever paused.')}
        </p>
      )}
      {live?.checkpointsOff && (
        <p className="warning" role="alert" data-testid="checkpoints-off">
          Checkpoints are off: {live.checkpointsOff.message} The run goes on, but cannot be resumed after a
          reload. {live.checkpointsOff.hint}
        </p>
      )}
      {live?.phase === 'paused' && live.reason && (
        <p className="warning" role="alert">
          Paused by the lab: {live.reason}
        </p>
      )}
      {live?.warnings.length ? (
        <details className="warnings">
          <summary>
            {live.warnings.length} warning{live.warnings.length === 1 ? '' : 's'} during this run
          </summary>
          <ul>
            {live.warnings.slice(-20).map((w, i) => (
              <li key={i}>
                step {w.step}: {w.message}
              </li>
            ))}
          </ul>
        </details>
      ) : null}
      {live?.phase === 'failed' && live.error && <RunError live={live} />}
    </div>
  );
}

function RunError({ live }: { live: LiveRun }) {
  const error = live.error!;
  const setDraft = useLab((s) => s.setDraft);
  const startRun = useLab((s) => s.startRun);
  const setPanel = useLab((s) => s.setPanel);
  const resumeSaved = useLab((s) => s.resumeSaved);
  const discardSaved = useLab((s) => s.discardSaved);
  const saved = useLab((s) => s.saved.find((r) => r.runId === live.id));
  const smaller = () => {
    let c = live.config;
    c = withField(c, 'batching.packLength', Math.max(64, Math.floor(c.batching.packLength / 2)));
    c = withField(c, 'batching.packsPerStep', Math.max(1, Math.floor(c.batching.packsPerStep / 2)));
    if (c.trainable === 'lora') {
      c = withField(c, 'lora.r', Math.max(1, Math.floor(c.lora.r / 2)));
      if (c.weightFormat !== 'q4_0') c = withField(c, 'weightFormat', 'q4_0');
    }
    c = withField(c, 'recompute', true);
    setDraft(c);
  };
  return (
    <ErrorBox error={error} testId="run-error">
      {error.code === 'out-of-memory' && (
        <button type="button" onClick={smaller}>
          Use smaller settings (half the pack length and rank, q4_0, recompute)
        </button>
      )}
      {saved && (
        <>
          <button type="button" className="primary" onClick={() => void resumeSaved(saved.runId)}>
            Resume from the last checkpoint (step {saved.step})
          </button>
          <button type="button" onClick={() => void discardSaved(saved.runId)}>
            Discard the checkpoint
          </button>
        </>
      )}
      {!saved && error.code === 'device-lost' && (
        <button type="button" onClick={() => void startRun(live.config, `${live.name} (again)`)}>
          Start the run again with the same settings
        </button>
      )}
      {error.code === 'limit-exceeded' && (
        <button type="button" onClick={() => setPanel('model')}>
          Choose a smaller model or quantization
        </button>
      )}
    </ErrorBox>
  );
}

function ScoreHistogram({ run }: { run: FinishedRun }) {
  const data = run.histogram.bins.map((b) => ({
    score: `${b.from.toFixed(1)}–${b.to.toFixed(1)}`,
    vulnerable: b.vulnerable,
    safe: b.safe,
  }));
  const thresholdBin = `${Math.min(0.9, Math.floor(run.threshold * 10) / 10).toFixed(1)}–${Math.min(1, Math.floor(run.threshold * 10) / 10 + 0.1).toFixed(1)}`;
  return (
    <BarsChart
      testId="score-histogram"
      ariaLabel={`Scores per class on ${run.histogram.split}`}
      data={data}
      xKey="score"
      xLabel={`p(vulnerable) on ${run.histogram.split}`}
      yLabel="functions"
      bars={[
        { key: 'safe', name: 'not vulnerable', color: SERIES_COLORS[0] },
        { key: 'vulnerable', name: 'vulnerable', color: SERIES_COLORS[1] },
      ]}
      reference={{ x: thresholdBin, label: `threshold ${run.threshold.toFixed(2)}` }}
    />
  );
}

function RunCharts({ live }: { live: LiveRun }) {
  const runs = useLab((s) => s.runs);
  const finished = live.finishedId ? runs.find((r) => r.id === live.finishedId) : undefined;
  const steps = useMemo(
    () =>
      // The worker's history, already thinned (first, last, best and change points kept).
      live.history.steps.map((p) => ({
        step: p.step,
        loss: Number.isFinite(p.loss) ? p.loss : undefined,
        lr: p.lr,
        tokens: p.tokensPerSecond,
        gradNorm: Number.isFinite(p.gradNorm) ? p.gradNorm : undefined,
      })),
    [live.history.steps],
  );
  // Validation loss sits on the training-loss chart at the steps it was evaluated.
  const losses = useMemo(() => {
    const rows = new Map<number, Record<string, number | undefined>>(
      steps.map((p) => [p.step, { step: p.step, loss: p.loss }]),
    );
    for (const e of live.history.evals) {
      if (e.loss === undefined || !Number.isFinite(e.loss)) continue;
      rows.set(e.step, { step: e.step, ...rows.get(e.step), validation: e.loss });
    }
    return [...rows.values()].sort((a, b) => a.step! - b.step!);
  }, [steps, live.history.evals]);
  // The validation-loss points drawn, as [step, loss] pairs (read by the resume test).
  const validationLoss = useMemo(
    () =>
      JSON.stringify(
        live.history.evals.filter((e) => Number.isFinite(e.loss ?? NaN)).map((e) => [e.step, e.loss]),
      ),
    [live.history.evals],
  );
  const auc = useMemo(
    () =>
      live.history.evals.map((e) => ({ step: e.step, auc: e.rocAuc ?? undefined, ap: e.prAuc ?? undefined })),
    [live.history.evals],
  );
  const roc = useMemo(() => curveSeries(live.history.evals, 'roc'), [live.history.evals]);
  const pr = useMemo(() => curveSeries(live.history.evals, 'pr'), [live.history.evals]);
  return (
    <div className="charts-grid">
      <div>
        <h4>ROC on validation</h4>
        {roc.length ? (
          <CurveChart kind="roc" series={roc} testId="roc-chart" height={300} />
        ) : (
          <p className="muted chart-empty" data-testid="roc-chart-empty">
            The ROC curve appears at the first evaluation (
            {live.config.evalEvery ? `every ${live.config.evalEvery} steps` : 'at the end of each epoch'}).
          </p>
        )}
      </div>
      <div>
        <h4>Precision–recall on validation</h4>
        {pr.length ? (
          <CurveChart kind="pr" series={pr} testId="pr-chart" height={300} />
        ) : (
          <p className="muted chart-empty">The PR curve appears at the first evaluation.</p>
        )}
      </div>
      <div data-testid="loss-panel" data-validation-loss={validationLoss}>
        <h4>Loss</h4>
        <SeriesChart
          testId="loss-chart"
          data={losses}
          lines={[
            { key: 'loss', name: 'train loss', color: SERIES_COLORS[0] },
            { key: 'validation', name: 'validation loss', color: SERIES_COLORS[1] },
          ]}
          markers={live.markers}
          yLabel="loss"
        />
      </div>
      <div>
        <h4>Validation AUC over steps</h4>
        <SeriesChart
          testId="auc-chart"
          data={auc}
          lines={[
            { key: 'auc', name: 'ROC AUC', color: SERIES_COLORS[0] },
            { key: 'ap', name: 'PR AUC (AP)', color: SERIES_COLORS[2] },
          ]}
          markers={live.markers}
          yLabel="area"
        />
      </div>
      <div>
        <h4>Learning rate</h4>
        <SeriesChart
          testId="lr-chart"
          data={steps}
          lines={[{ key: 'lr', name: 'learning rate', color: SERIES_COLORS[3] }]}
          markers={live.markers}
          yLabel="lr"
        />
      </div>
      <div>
        <h4>Throughput</h4>
        <SeriesChart
          testId="tokens-chart"
          data={steps}
          lines={[{ key: 'tokens', name: 'tokens/s', color: SERIES_COLORS[4] }]}
          markers={live.markers}
          yLabel="tokens/s"
        />
      </div>
      <div>
        <h4>Scores per class</h4>
        {finished ? (
          <ScoreHistogram run={finished} />
        ) : (
          <p className="muted chart-empty">
            Shown when the run ends: how the scores of vulnerable and safe functions separate.
          </p>
        )}
      </div>
      {finished && (
        <div className="final-metrics">
          <h4>Result</h4>
          <p data-testid="final-metrics">
            Best validation ROC AUC at step {finished.bestStep}: {formatMetric(finished.validation.rocAuc)}.
            Test ROC AUC {formatMetric(finished.test.rocAuc)}, PR AUC {formatMetric(finished.test.prAuc)}, F1
            at the validation threshold {formatMetric(finished.test.atThreshold.f1)}.
          </p>
          <button type="button" onClick={() => useLab.getState().setPanel('results')}>
            Compare and export in Results
          </button>
        </div>
      )}
    </div>
  );
}

/** Runs interrupted by a reload, a crash or a lost GPU device, with a checkpoint in this browser. */
function SavedRuns({ live }: { live?: LiveRun }) {
  const saved = useLab((s) => s.saved);
  const model = useLab((s) => s.model);
  const resumeSaved = useLab((s) => s.resumeSaved);
  const discardSaved = useLab((s) => s.discardSaved);
  const active = !!live && ['preparing', 'running', 'paused'].includes(live.phase);
  // The live run's own checkpoint is offered in its error box.
  const shown = saved.filter((r) => r.runId !== live?.id);
  if (!shown.length) return null;
  return (
    <section className="saved-runs" aria-labelledby="saved-runs-title" data-testid="saved-runs">
      <h3 id="saved-runs-title">Interrupted runs</h3>
      <ul>
        {shown.map((r) => (
          <li key={r.runId} data-testid="saved-run" data-run-id={r.runId}>
            <span>
              Run <strong>{r.name}</strong> stopped at step {r.step}
              {r.totalSteps ? ` of ${r.totalSteps}` : ''} — {r.modelName} · {r.dataset}, saved{' '}
              {new Date(r.savedAt).toLocaleString()}.
            </span>{' '}
            {r.model.kind === 'files' && model.name !== r.modelName && (
              <span className="muted">
                It trained a model folder from this computer: pick the same folder ({r.modelName}) in the
                Model panel first.{' '}
              </span>
            )}
            <button
              type="button"
              className="primary"
              disabled={active}
              aria-label={`Resume ${r.name} from step ${r.step}`}
              onClick={() => void resumeSaved(r.runId)}
            >
              Resume
            </button>{' '}
            <button
              type="button"
              aria-label={`Discard the saved run ${r.name}`}
              onClick={() => void discardSaved(r.runId)}
            >
              Discard
            </button>
          </li>
        ))}
      </ul>
      <p className="muted small">
        Checkpoints are kept in this browser only, and removed when a run ends. A resumed run continues to the
        same weights as if it had never stopped.
      </p>
    </section>
  );
}

export function TrainPanel() {
  const live = useLab((s) => s.live);
  const ablation = useLab((s) => s.ablation);
  return (
    <div className="train-panel">
      <SavedRuns live={live} />
      <RunControls live={live} />
      {ablation && <AblationView />}
      {live ? (
        <RunCharts live={live} />
      ) : (
        <p className="muted">
          No run yet. Charts of loss, learning rate, tokens/s, ROC and PR curves appear here.
        </p>
      )}
      <ConfigForm />
    </div>
  );
}
