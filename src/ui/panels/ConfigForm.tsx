import { useState, type KeyboardEvent } from 'react';
import type { ModelConfig } from '../../io/presets.ts';
import {
  FIELDS,
  getField,
  mapLoraTargets,
  withField,
  type FieldSpec,
  type LoraTarget,
  type RunConfig,
  type TargetMapping,
} from '../../train/config.ts';
import { formatValue } from '../format.ts';
import { chosenModelConfig, describeChanges, familyLabel, targetsOffered } from '../loraTargets.ts';
import { useLab } from '../store.ts';

const GROUPS: { title: string; prefix: (path: string) => boolean }[] = [
  {
    title: 'Model and objective',
    prefix: (p) => ['model', 'weightFormat', 'objective', 'trainable'].includes(p),
  },
  { title: 'Loss', prefix: (p) => p.startsWith('loss.') },
  { title: 'LoRA', prefix: (p) => p.startsWith('lora.') },
  {
    title: 'Optimizer (AdamW) and schedule',
    prefix: (p) => p.startsWith('optimizer.') || p.startsWith('schedule.'),
  },
  {
    title: 'Batching',
    prefix: (p) => p.startsWith('batching.') || p === 'recompute',
  },
  {
    title: 'Run',
    prefix: (p) =>
      ['epochs', 'evalEvery', 'checkpointEvery', 'truncation', 'seed'].includes(p) ||
      p.startsWith('normalize.'),
  },
];

/** The allowed values of an enum field, read from its validator's message ("one of "a", "b""). */
function enumOptions(field: FieldSpec): string[] | undefined {
  const message = field.check(Symbol('probe'));
  if (!message?.startsWith('one of')) return undefined;
  return [...message.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
}

function parseText(field: FieldSpec, text: string): unknown {
  const trimmed = text.trim();
  if (field.default === null && (trimmed === '' || trimmed === 'null')) return null;
  if (typeof field.default === 'number' || field.default === null) {
    return trimmed === '' ? NaN : Number(trimmed);
  }
  return trimmed;
}

const fieldId = (path: string) => `field-${path.replace(/\./g, '-')}`;

/**
 * The LoRA target checkboxes for a model: the targets its family offers, which of them `list` selects
 * (another family's names stand for the same parts of its blocks, as the trainer reads them), and
 * what had to be carried over.
 */
export function targetChoices(
  list: readonly LoraTarget[],
  model: ModelConfig | undefined,
): { offered: readonly LoraTarget[]; checked: LoraTarget[]; changes: TargetMapping['changes'] } {
  const offered = targetsOffered(model);
  const { targets, changes } = mapLoraTargets(list, offered);
  return { offered, checked: targets, changes };
}

/** The list after ticking or clearing one box: always in the model's own names and order. */
export function toggleTarget(
  choices: { offered: readonly LoraTarget[]; checked: readonly LoraTarget[] },
  target: LoraTarget,
  on: boolean,
): LoraTarget[] {
  return choices.offered.filter((t) => (t === target ? on : choices.checked.includes(t)));
}

function FieldRow({
  field,
  config,
  model,
  running,
  onCommit,
}: {
  field: FieldSpec;
  config: RunConfig;
  /** The config of the model these settings are for (the loaded one, else the draft's preset). */
  model: ModelConfig | undefined;
  running: boolean;
  onCommit: (path: string, value: unknown) => Promise<string | undefined>;
}) {
  const value = getField(config, field.path);
  const [text, setText] = useState<string | undefined>(undefined);
  const [problem, setProblem] = useState<string | undefined>();
  const [pending, setPending] = useState(false);
  const { disabled, note } = fieldLock(field, config, running);
  const id = fieldId(field.path);
  const options = enumOptions(field);

  const commit = async (next: unknown) => {
    const expected = field.check(next);
    if (expected) {
      setProblem(`expected ${expected}`);
      return;
    }
    setPending(true);
    const error = await onCommit(field.path, next);
    setPending(false);
    setProblem(error);
    if (!error) setText(undefined);
  };

  let input;
  if (typeof field.default === 'boolean') {
    input = (
      <input
        id={id}
        type="checkbox"
        checked={Boolean(value)}
        disabled={disabled}
        onChange={(e) => void commit(e.target.checked)}
      />
    );
  } else if (Array.isArray(field.default)) {
    const choices = targetChoices((value as LoraTarget[]) ?? [], model);
    input = (
      <>
        <span id={id} className="checks" role="group" aria-label={field.path}>
          {choices.offered.map((t) => (
            <label key={t}>
              <input
                type="checkbox"
                checked={choices.checked.includes(t)}
                disabled={disabled}
                onChange={(e) => void commit(toggleTarget(choices, t, e.target.checked))}
              />
              {t}
            </label>
          ))}
        </span>
        {choices.changes.length > 0 && (
          <div className="muted small" data-testid="lora-targets-mapped">
            Named for another model family; on this {familyLabel(model)} model they stand for the same parts
            of its blocks ({describeChanges(choices.changes)}).{' '}
            {!disabled && (
              <button type="button" onClick={() => void commit(choices.checked)}>
                Use {familyLabel(model)}’s names
              </button>
            )}
          </div>
        )}
      </>
    );
  } else if (options) {
    input = (
      <select id={id} value={String(value)} disabled={disabled} onChange={(e) => void commit(e.target.value)}>
        {options.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    );
  } else {
    const shown = text ?? formatValue(value);
    const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
      if (e.key === 'Enter') void commit(parseText(field, shown));
      if (e.key === 'Escape') {
        setText(undefined);
        setProblem(undefined);
      }
    };
    input = (
      <input
        id={id}
        type="text"
        inputMode={typeof field.default === 'number' ? 'decimal' : undefined}
        value={shown}
        disabled={disabled}
        aria-invalid={problem ? true : undefined}
        aria-describedby={`${id}-desc`}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKey}
        onBlur={() => text !== undefined && void commit(parseText(field, text))}
      />
    );
  }

  return (
    <div className={`field${field.live ? ' live' : ''}`} data-path={field.path}>
      <label htmlFor={id} className="field-name">
        {field.path}
        {field.live && (
          <span className="badge" title="can be changed while a run is going">
            live
          </span>
        )}
      </label>
      <div className="field-input">
        {input}
        {pending && <span className="muted"> applying…</span>}
      </div>
      <div className="field-desc" id={`${id}-desc`}>
        {field.description}. <span className="muted">Default: {formatValue(field.default)}</span>
        {note && <div className="muted">{note}</div>}
        {problem && (
          <div className="field-problem" role="alert">
            {problem}
          </div>
        )}
      </div>
    </div>
  );
}

/**
 * Whether a field can be edited now, and why not where that is not obvious: during a run only live
 * fields can change, and a next-token run refuses the loss's (they belong to the classification loss).
 */
export function fieldLock(
  field: FieldSpec,
  config: RunConfig,
  running: boolean,
): { disabled: boolean; note?: string } {
  if (running && field.path.startsWith('loss.') && config.objective !== 'cls') {
    return { disabled: true, note: 'Not used by this run: it trains on next-token prediction.' };
  }
  return { disabled: (running && !field.live) || field.path === 'model' };
}

/** Every hyperparameter with its one-line explanation and the paper's default; live ones stay editable mid-run. */
export function ConfigForm() {
  const draft = useLab((s) => s.draft);
  const live = useLab((s) => s.live);
  const setDraftField = useLab((s) => s.setDraftField);
  const updateRun = useLab((s) => s.updateRun);
  const loaded = useLab((s) => s.model);
  const running = !!live && ['preparing', 'running', 'paused'].includes(live.phase);
  const config = running ? live.config : draft;
  const model = chosenModelConfig({ model: loaded, draft: config });

  const onCommit = async (path: string, value: unknown): Promise<string | undefined> => {
    if (running) {
      const error = await updateRun(path, value);
      if (error) return `${error.message} ${error.hint}`;
      // Keep the draft in step so the next run starts from the tuned value.
      try {
        useLab.getState().setDraft(withField(useLab.getState().draft, path, value));
      } catch {
        // the draft keeps its value
      }
      return undefined;
    }
    try {
      setDraftField(path, value);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  };

  return (
    <section className="config-form" aria-labelledby="config-title">
      <h3 id="config-title">Hyperparameters</h3>
      <p className="muted">
        {running
          ? 'A run is going: fields marked “live” apply from the next optimizer step and are marked on the charts; the others are locked until it ends.'
          : 'Press Enter or leave a field to apply it. Defaults are the paper’s settings.'}
      </p>
      {GROUPS.map((group) => (
        <fieldset key={group.title}>
          <legend>{group.title}</legend>
          {FIELDS.filter((f) => group.prefix(f.path)).map((field) => (
            <FieldRow
              key={field.path + (running ? ':run' : ':draft')}
              field={field}
              config={config}
              model={model}
              running={running}
              onCommit={onCommit}
            />
          ))}
        </fieldset>
      ))}
    </section>
  );
}
