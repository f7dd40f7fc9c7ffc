import { useEffect, type KeyboardEvent } from 'react';
import { PANELS, useLab, type PanelId } from './store.ts';
import { StatusLine } from './StatusLine.tsx';
import { PanelBody } from './panels/PanelBody.tsx';

const TITLES: Record<PanelId, string> = {
  model: 'Model',
  data: 'Data',
  train: 'Train',
  results: 'Results',
  scan: 'Scan',
};

export function App() {
  const { panel, setPanel, largeType, setLargeType, theme, setTheme, probeGpu } = useLab();

  useEffect(() => {
    void probeGpu();
  }, [probeGpu]);

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
