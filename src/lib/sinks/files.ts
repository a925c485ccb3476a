// FileSink: one image per frame (PNG, WebP or JPEG), written atomically (temporary file, then rename) inside a folder,
// or to one fixed path for a single input.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { FrameSink, ProcessedFrame } from '../frame';
import { safeJoin } from '../paths';

export async function writeFileAtomic(file: string, data: Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

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
    this.written.push(file);
  }

  async close(): Promise<void> {}
}
