/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (never in pipes, files or
 * CI logs). Messages printed through `warn` clear the bar first so the two do not interleave.
 */
export interface Progress {
  /** Starts a phase of `total` steps. */
  start(label: string, total: number): void;
  update(done: number): void;
  /** A warning line on stderr, above the bar. */
  warn(message: string): void;
  /** Clears the bar. */
  done(): void;
}

const WIDTH = 24;

export function stderrProgress(tty = process.stderr.isTTY === true): Progress {
  let label = '';
  let total = 0;
  let shown = false;
  let last = -1;
  const clear = () => {
    if (shown) process.stderr.write('\r\x1b[K');
    shown = false;
  };
  const draw = (done: number) => {
    if (!tty || total <= 0) return;
    const filled = Math.round((WIDTH * Math.min(done, total)) / total);
    if (filled === last && done !== total) return;
    last = filled;
    process.stderr.write(
      `\r[${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${label} ${done}/${total}\x1b[K`,
    );
    shown = true;
  };
  return {
    start(nextLabel, nextTotal) {
      label = nextLabel;
      total = nextTotal;
      last = -1;
      draw(0);
    },
    update: draw,
    warn(message) {
      clear();
      console.warn(message);
      last = -1;
    },
    done: clear,
  };
}
