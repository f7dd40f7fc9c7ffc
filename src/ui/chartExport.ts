/**
 * Charts as files: the recharts <svg> serialized (with its legend, which recharts draws in HTML, added
 * as SVG text), and a PNG drawn from that SVG on a canvas. Everything happens in the page.
 */
import { download } from './format.ts';

const SVG_NS = 'http://www.w3.org/2000/svg';

/** A standalone SVG document of the chart inside `figure`. */
export function chartSvg(figure: HTMLElement, title: string): string {
  const source = figure.querySelector('svg.recharts-surface') as SVGSVGElement | null;
  if (!source) throw new Error('The chart has not been drawn yet.');
  const width = source.width.baseVal.value || source.clientWidth || 600;
  const height = source.height.baseVal.value || source.clientHeight || 320;
  const legend = [...figure.querySelectorAll('.recharts-legend-item')].map((item) => {
    const text = item.textContent ?? '';
    const colored = item.querySelector('[fill]:not([fill="none"]), [stroke]:not([stroke="none"])');
    const color = colored?.getAttribute('stroke') ?? colored?.getAttribute('fill') ?? '#333';
    return { text, color };
  });
  const top = 24 + legend.length * 16;
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('xmlns', SVG_NS);
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height + top));
  svg.setAttribute('viewBox', `0 0 ${width} ${height + top}`);
  svg.setAttribute('font-family', 'system-ui, sans-serif');
  svg.setAttribute('font-size', '12');
  const background = document.createElementNS(SVG_NS, 'rect');
  background.setAttribute('width', '100%');
  background.setAttribute('height', '100%');
  background.setAttribute('fill', '#ffffff');
  svg.append(background);
  const heading = document.createElementNS(SVG_NS, 'text');
  heading.setAttribute('x', '8');
  heading.setAttribute('y', '16');
  heading.setAttribute('font-weight', 'bold');
  heading.textContent = title;
  svg.append(heading);
  legend.forEach((entry, i) => {
    const line = document.createElementNS(SVG_NS, 'rect');
    line.setAttribute('x', '12');
    line.setAttribute('y', String(26 + i * 16));
    line.setAttribute('width', '16');
    line.setAttribute('height', '4');
    line.setAttribute('fill', entry.color);
    const text = document.createElementNS(SVG_NS, 'text');
    text.setAttribute('x', '34');
    text.setAttribute('y', String(32 + i * 16));
    text.textContent = entry.text;
    svg.append(line, text);
  });
  const body = source.cloneNode(true) as SVGSVGElement;
  body.setAttribute('y', String(top));
  body.setAttribute('x', '0');
  // Text in the page takes its colour from CSS; in a file it must be explicit (and readable on white).
  for (const t of body.querySelectorAll('text')) if (!t.getAttribute('fill')) t.setAttribute('fill', '#333');
  svg.append(body);
  return new XMLSerializer().serializeToString(svg);
}

export function downloadSvg(figure: HTMLElement, title: string, name: string): void {
  download(`${name}.svg`, chartSvg(figure, title), 'image/svg+xml');
}

export async function downloadPng(
  figure: HTMLElement,
  title: string,
  name: string,
  scale = 2,
): Promise<void> {
  await downloadSvgAsPng(chartSvg(figure, title), name, scale);
}

/**
 * `svg` (a standalone SVG document) drawn on a canvas at `scale` and downloaded as `${name}.png`;
 * `subject` names the picture in the errors ("The chart could not be drawn as an image.").
 */
export async function downloadSvgAsPng(
  svg: string,
  name: string,
  scale = 2,
  subject = 'The chart',
): Promise<void> {
  const image = new Image();
  const loaded = new Promise<void>((resolve, reject) => {
    image.onload = () => resolve();
    image.onerror = () => reject(new Error(`${subject} could not be drawn as an image.`));
  });
  image.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  await loaded;
  const canvas = document.createElement('canvas');
  canvas.width = image.width * scale;
  canvas.height = image.height * scale;
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('No 2D canvas in this browser.');
  ctx.scale(scale, scale);
  ctx.drawImage(image, 0, 0);
  const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/png'));
  if (!blob) throw new Error(`${subject} could not be encoded as PNG.`);
  download(`${name}.png`, blob, 'image/png');
}
