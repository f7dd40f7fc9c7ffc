/**
 * Measures the lab's one-click classroom demo in headless Chromium (SwiftShader WebGPU, as Chrome
 * without a GPU): the time to the first ROC point and every validation ROC AUC with its time, until the
 * run ends or `--minutes` pass. Needs the production build (`npx vite build`).
 *
 *   npx tsx scripts/measure-classroom-demo.ts [--minutes 25] [--demo '{"epochs": 2}']
 *
 * Prints one line per evaluation and a JSON summary (the figures behind the demo's promise in the lab).
 */
import { launchChromium, serveBuild } from '../tests/e2e/browser.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const minutes = Number(arg('minutes', '25'));
const demo = arg('demo', '');
const { server, url } = await serveBuild();
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(demo ? `${url}?demo=${encodeURIComponent(demo)}` : url);
  await page.locator('[data-testid="adapter-line"][data-state="ready"]').waitFor({ timeout: 60_000 });
  const adapter = await page.getByTestId('adapter-line').innerText();
  const started = performance.now();
  await page.getByRole('button', { name: 'Run the classroom demo' }).click();
  const evals: { seconds: number; rocAuc: number }[] = [];
  let last = '';
  while ((performance.now() - started) / 60_000 < minutes) {
    await page.waitForTimeout(2000);
    const text = await page
      .getByTestId('last-auc')
      .innerText({ timeout: 100 })
      .catch(() => '');
    if (text && text !== last) {
      last = text;
      const seconds = (performance.now() - started) / 1000;
      const rocAuc = Number(/(\d\.\d{3})/.exec(text)?.[1]);
      evals.push({ seconds, rocAuc });
      console.log(`${seconds.toFixed(0)} s: ${text}`);
    }
    const state = await page
      .getByTestId('demo-status')
      .getAttribute('data-state')
      .catch(() => null);
    if (state === 'done' || state === 'failed') break;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ adapter, demo: demo || null, seconds, evals }));
} finally {
  await browser.close();
  await server.close();
}
