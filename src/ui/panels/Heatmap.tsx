/**
 * A method's code with its token attributions as a heat-map: every token a React text node with an
 * inline background (never HTML from the data), each line's sum in the gutter, the top lines listed
 * with their share. Red pushes toward "vulnerable"; integrated gradients are signed (blue pushes
 * away), gradient × input is not. Exports as SVG or PNG, drawn from the same data.
 */
import type { ExplainedMethod, ExplainMethod } from '../../worker/protocol.ts';
import { downloadSvgAsPng } from '../chartExport.ts';
import { download } from '../format.ts';

export const METHOD_NAMES: Record<ExplainMethod, string> = {
  grad: 'gradient × input',
  ig: 'integrated gradients',
};

interface Cell {
  text: string;
  score: number | null;
}

interface Line {
  cells: Cell[];
  weight: number;
  top: boolean;
}

/** The segments cut at line breaks, with each line's weight. */
function layout(method: ExplainedMethod): Line[] {
  const lines: Line[] = [{ cells: [], weight: 0, top: false }];
  for (const s of method.segments) {
    const parts = s.text.split(/\r\n|\r|\n/);
    parts.forEach((part, i) => {
      if (i > 0) lines.push({ cells: [], weight: 0, top: false });
      if (part) lines[lines.length - 1].cells.push({ text: part.replace(/\t/g, '    '), score: s.score });
    });
  }
  for (const l of method.lines) if (lines[l.line]) lines[l.line].weight = l.weight;
  for (const t of method.topLines) if (lines[t.line]) lines[t.line].top = true;
  return lines;
}

function color(score: number | null, max: number): string | undefined {
  if (score === null || !(max > 0) || score === 0) return undefined;
  const a = Math.min(1, Math.abs(score) / max) * 0.65;
  if (a < 0.02) return undefined;
  return score > 0 ? `rgba(220, 38, 38, ${a.toFixed(3)})` : `rgba(37, 99, 235, ${a.toFixed(3)})`;
}

function maxAbs(values: Iterable<number | null>): number {
  let m = 0;
  for (const v of values) if (v !== null && Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m;
}

const CHAR_W = 7.25;
const LINE_H = 17;
const GUTTER = 44;

/** The heat-map drawn as a standalone SVG (monospace, one character a fixed width). */
export function heatmapSvg(method: ExplainedMethod, kind: ExplainMethod): string {
  const lines = layout(method);
  const tokenMax = maxAbs(method.segments.map((s) => s.score));
  const lineMax = maxAbs(lines.map((l) => l.weight));
  const esc = (s: string) =>
    s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const width =
    GUTTER + 16 + CHAR_W * Math.max(40, ...lines.map((l) => l.cells.reduce((n, c) => n + c.text.length, 0)));
  const top = 28;
  const height = top + lines.length * LINE_H + 8;
  const body: string[] = [];
  lines.forEach((line, i) => {
    const y = top + i * LINE_H;
    const gutter = color(line.weight, lineMax);
    if (gutter) body.push(`<rect x="0" y="${y}" width="${GUTTER - 4}" height="${LINE_H}" fill="${gutter}"/>`);
    body.push(
      `<text x="${GUTTER - 8}" y="${y + 13}" text-anchor="end" fill="#57606a"${line.top ? ' font-weight="bold"' : ''}>${method.line + i}</text>`,
    );
    let x = GUTTER + 8;
    for (const c of line.cells) {
      const w = c.text.length * CHAR_W;
      const fill = color(c.score, tokenMax);
      if (fill)
        body.push(
          `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${LINE_H}" fill="${fill}"/>`,
        );
      body.push(`<text x="${x.toFixed(1)}" y="${y + 13}" xml:space="preserve">${esc(c.text)}</text>`);
      x += w;
    }
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width.toFixed(0)}" height="${height}" viewBox="0 0 ${width.toFixed(0)} ${height}" font-family="ui-monospace, Menlo, Consolas, monospace" font-size="12" fill="#1b1f24">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="8" y="18" font-family="system-ui, sans-serif" font-weight="bold">${esc(`${method.name}: ${METHOD_NAMES[kind]}`)}</text>`,
    ...body,
    '</svg>',
  ].join('\n');
}

export function Heatmap({ method, kind }: { method: ExplainedMethod; kind: ExplainMethod }) {
  const lines = layout(method);
  const tokenMax = maxAbs(method.segments.map((s) => s.score));
  const lineMax = maxAbs(lines.map((l) => l.weight));
  const codeLines = method.code.split(/\r\n|\r|\n/);
  const file = `heatmap-${method.name.replace(/[^\w.-]+/g, '_')}-${kind}`;
  return (
    <figure className="heatmap" data-testid="heatmap" data-method={method.name}>
      <figcaption>
        <strong>{method.name}</strong> (line {method.line}) — {METHOD_NAMES[kind]}, log-odds{' '}
        {method.margin.toFixed(3)}
        {method.baselineMargin !== undefined && ` (all padding: ${method.baselineMargin.toFixed(3)})`}
        <span className="heatmap-export">
          <button
            type="button"
            onClick={() => download(`${file}.svg`, heatmapSvg(method, kind), 'image/svg+xml')}
          >
            {method.name} heat-map: SVG
          </button>
          <button
            type="button"
            onClick={() => void downloadSvgAsPng(heatmapSvg(method, kind), file, 2, 'The heat-map')}
          >
            {method.name} heat-map: PNG
          </button>
        </span>
      </figcaption>
      {method.dropped ? (
        <p className="muted">This method is longer than the model&apos;s context and was not scored.</p>
      ) : (
        <>
          <div className="heatmap-code" role="table" aria-label={`Attributions of ${method.name}`}>
            {lines.map((line, i) => (
              <div
                key={i}
                role="row"
                className={line.top ? 'heatmap-line top' : 'heatmap-line'}
                data-top={line.top ? 'true' : undefined}
              >
                <span
                  role="rowheader"
                  className="heatmap-lineno"
                  style={{ background: color(line.weight, lineMax) }}
                  title={`line ${method.line + i}: ${line.weight.toPrecision(3)}`}
                >
                  {method.line + i}
                </span>
                <span role="cell" className="heatmap-text">
                  {line.cells.map((c, k) => (
                    <span
                      key={k}
                      style={{ background: color(c.score, tokenMax) }}
                      title={c.score === null ? 'not scored' : c.score.toPrecision(3)}
                    >
                      {c.text}
                    </span>
                  ))}
                </span>
              </div>
            ))}
          </div>
          <ol className="top-lines" data-testid="top-lines">
            {method.topLines.map((t) => (
              <li key={t.line}>
                line {method.line + t.line}: {(t.share * 100).toFixed(0)}% —{' '}
                <code>{(codeLines[t.line] ?? '').trim()}</code>
              </li>
            ))}
            {method.topLines.length === 0 && <li className="muted">No line pushes toward vulnerable.</li>}
          </ol>
        </>
      )}
    </figure>
  );
}
