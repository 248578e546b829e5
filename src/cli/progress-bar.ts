// A one-line progress bar on stderr for long builds; silent when stderr is not a terminal.
import { type Bytes, formatBytes } from '../base/units.js';

/** Redraw at most this often: a build reports progress far more often than a terminal needs. */
const REDRAW_MS = 100;
const BAR_WIDTH = 20;

export interface ProgressBar {
  /** Takes the shape of materialize's onProgress, so it can be passed as is. */
  readonly update: (done: Bytes, total: Bytes) => void;
  /** Draws the last state and ends the line. */
  readonly finish: () => void;
}

/** h:mm:ss, or m:ss under an hour. */
function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor(s / 60) % 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** The text of the bar: `label [#####-----]  42.0%  1.1 GiB / 2.6 GiB  350.2 MiB/s  ETA 0:04`. */
export function renderProgress(label: string, done: Bytes, total: Bytes, elapsedMs: number): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * BAR_WIDTH);
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const eta = rate > 0 ? formatDuration((total - done) / rate) : '?';
  return (
    `${label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${(fraction * 100).toFixed(1).padStart(5)}%` +
    `  ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(Math.round(rate))}/s  ETA ${eta}`
  );
}

export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  if (!stream.isTTY) return { update: () => undefined, finish: () => undefined };
  const started = Date.now();
  let drawnAt = 0;
  let last: [Bytes, Bytes] | undefined;
  const draw = (): void => {
    if (!last) return;
    const line = renderProgress(label, last[0], last[1], Date.now() - started);
    // \r plus "erase to end of line": the new text may be shorter. A pty without a size reports 0 columns.
    stream.write(`\r${line.slice(0, Math.max(0, (stream.columns || 80) - 1))}\x1b[K`);
    drawnAt = Date.now();
  };
  return {
    update: (done, total) => {
      last = [done, total];
      if (done >= total || Date.now() - drawnAt >= REDRAW_MS) draw();
    },
    finish: () => {
      draw();
      if (last) stream.write('\n');
    },
  };
}
