import { useEffect, type KeyboardEvent } from 'react';
import { PANELS, useLab, type PanelId } from './store.ts';
import { StatusLine } from './StatusLine.tsx';
import { PanelBody } from './panels/PanelBody.tsx';
import { ClassroomDemo } from './Demo.tsx';
import { configFromHash } from './share.ts';

const TITLES: Record<PanelId, string> = {
  model: 'Model',
  data: 'Data',
  train: 'Train',
  results: 'Results',
  scan: 'Scan',
};

function Notices() {
  const notices = useLab((s) => s.notices);
  const dismiss = useLab((s) => s.dismiss);
  return (
    <div className="notices" aria-live="polite">
      {notices.map((n) => (
        <div key={n.id} className={`notice ${n.kind}`} role={n.kind === 'error' ? 'alert' : 'status'}>
          <span>{n.text}</span>
          <button type="button" aria-label="Dismiss" onClick={() => dismiss(n.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

export function App() {
  const { panel, setPanel, largeType, setLargeType, theme, setTheme, probeGpu } = useLab();

  useEffect(() => {
    void probeGpu();
  }, [probeGpu]);

  // Runs cut short by a reload or a crash can be resumed from their checkpoints.
  useEffect(() => {
    void useLab
      .getState()
      .refreshSaved()
      .then(() => {
        const { saved, notify } = useLab.getState();
        if (saved.length) {
          notify(
            'info',
            `${saved.length === 1 ? `Run “${saved[0].name}” was` : `${saved.length} runs were`} interrupted: resume or discard in the Train panel.`,
            'interrupted',
          );
        }
      });
  }, []);

  // A shared run link (#config=…) pre-fills the Train panel.
  useEffect(() => {
    const apply = () => {
      try {
        const config = configFromHash(window.location.hash);
        if (!config) return;
        const { setDraft, notify } = useLab.getState();
        setDraft(config);
        setPanel('train');
        notify(
          'info',
          'Settings loaded from the shared link: check them in the Train panel, then press Start.',
        );
      } catch (error) {
        useLab
          .getState()
          .notify(
            'error',
            `The shared link’s settings could not be used: ${error instanceof Error ? error.message : error}`,
          );
      }
    };
    apply();
    window.addEventListener('hashchange', apply);
    return () => window.removeEventListener('hashchange', apply);
  }, [setPanel]);

  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    document.documentElement.classList.toggle('large-type', largeType);
  }, [theme, largeType]);

  // Arrow keys move between tabs, as in the WAI-ARIA tabs pattern.
  const onTabKey = (event: KeyboardEvent<HTMLButtonElement>) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    const next = PANELS[(PANELS.indexOf(panel) + step + PANELS.length) % PANELS.length];
    setPanel(next);
    document.getElementById(`tab-${next}`)?.focus();
  };

  return (
    <div className="app">
      <header className="header">
        <h1>
          VulnLab{' '}
          <span className="tagline">finetune code LLMs to find vulnerable Java functions — on WebGPU</span>
        </h1>
        <div className="header-controls">
          <label>
            <input type="checkbox" checked={largeType} onChange={(e) => setLargeType(e.target.checked)} />{' '}
            Large type
          </label>
          <label>
            Theme{' '}
            <select value={theme} onChange={(e) => setTheme(e.target.value as typeof theme)}>
              <option value="system">system</option>
              <option value="light">light</option>
              <option value="dark">dark</option>
            </select>
          </label>
        </div>
      </header>
      <StatusLine />
      <Notices />
      <ClassroomDemo />
      <nav className="tabs" role="tablist" aria-label="Lab panels">
        {PANELS.map((id) => (
          <button
            key={id}
            id={`tab-${id}`}
            role="tab"
            type="button"
            aria-selected={panel === id}
            aria-controls={`panel-${id}`}
            tabIndex={panel === id ? 0 : -1}
            onClick={() => setPanel(id)}
            onKeyDown={onTabKey}
          >
            {TITLES[id]}
          </button>
        ))}
      </nav>
      <main
        id={`panel-${panel}`}
        role="tabpanel"
        aria-labelledby={`tab-${panel}`}
        className="panel"
        tabIndex={0}
      >
        <h2>{TITLES[panel]}</h2>
        <PanelBody panel={panel} />
      </main>
    </div>
  );
}
