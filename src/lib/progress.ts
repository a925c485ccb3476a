// A one-line progress display for terminals (stderr), redrawn at most every 100 ms.
import type { PipelineProgress } from './pipeline';

export class ProgressLine {
  private lastDraw = 0;
  private drawn = false;
  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = !!process.stderr.isTTY,
  ) {}

  update(p: PipelineProgress, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const fps = p.elapsedMs > 0 ? (p.done * 1000) / p.elapsedMs : 0;
    let line: string;
    if (p.total) {
      const width = 24;
      const filled = Math.round((Math.min(p.done, p.total) / p.total) * width);
      const eta = fps > 0 ? Math.max(0, (p.total - p.done) / fps) : 0;
      line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total} frames  ${fps.toFixed(1)} fps  ETA ${eta.toFixed(0)}s`;
    } else {
      line = `${p.done} frames  ${fps.toFixed(1)} fps`;
    }
    if (p.failed) line += `  ${p.failed} failed`;
    this.stream.write(`\r\x1b[2K${line}`);
    this.drawn = true;
  }

  done(): void {
    if (this.enabled && this.drawn) this.stream.write('\n');
  }
}
