// FileSink: one image per frame (PNG, WebP or JPEG), written atomically (temporary file, then rename) inside a folder,
// or to one fixed path for a single input.
import type { FrameSink, ProcessedFrame } from '../frame';
import { releaseBytes } from '../native';
import { safeJoin, writeFileAtomic } from '../paths';

export class FileSink implements FrameSink {
  readonly written: string[] = [];
  /** `folder`: outputs go to folder/<frame name><extension> (default .png); `file`: the single output path. */
  constructor(private readonly target: { folder: string; extension?: string } | { file: string }) {}

  pathFor(processed: ProcessedFrame): string {
    return 'file' in this.target ? this.target.file : safeJoin(this.target.folder, `${processed.frame.name}${this.target.extension ?? '.png'}`);
  }

  async write(processed: ProcessedFrame): Promise<void> {
    const file = this.pathFor(processed);
    await writeFileAtomic(file, processed.result.data);
    releaseBytes(processed.result.data);
    this.written.push(file);
  }

  async close(): Promise<void> {}
}
