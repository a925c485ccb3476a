// VideoSink: pipes raw RGBA frames into ffmpeg to make a video with alpha
// (.webm: VP9 yuva420p; .mov: ProRes 4444 with alpha). Written to a temporary name, renamed when complete.
import { type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BgrmError } from '../errors';
import { collectStderr, spawnFfmpeg, waitForExit } from '../ffmpeg';
import type { FrameSink, ProcessedFrame } from '../frame';
import { releaseBytes } from '../native';

const CODECS: Record<string, { format: string; args: string[] }> = {
  '.webm': {
    format: 'webm',
    args: ['-c:v', 'libvpx-vp9', '-pix_fmt', 'yuva420p', '-b:v', '0', '-crf', '32', '-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '1'],
  },
  '.mov': { format: 'mov', args: ['-c:v', 'prores_ks', '-profile:v', '4444', '-pix_fmt', 'yuva444p10le', '-vendor', 'apl0'] },
};

export function isAlphaVideoPath(p: string): boolean {
  return path.extname(p).toLowerCase() in CODECS;
}

export class VideoSink implements FrameSink {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private size?: { width: number; height: number };
  private readonly tmp: string;

  constructor(
    private readonly file: string,
    private readonly fps: number,
  ) {
    if (!isAlphaVideoPath(file)) {
      throw new BgrmError('ERR_INVALID_ARGUMENT', `video output must end in .webm or .mov (alpha-capable), not ${path.extname(file) || 'nothing'}`);
    }
    this.tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  }

  private start(width: number, height: number): void {
    const codec = CODECS[path.extname(this.file).toLowerCase()];
    const args = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${width}x${height}`,
      '-framerate', String(this.fps), '-i', 'pipe:0', ...codec.args, '-f', codec.format, this.tmp];
    this.child = spawnFfmpeg('ffmpeg', args);
    this.exited = waitForExit(this.child, `encoding ${this.file}`, collectStderr(this.child));
    this.exited.catch(() => undefined); // observed in write/close
    this.size = { width, height };
  }

  async write(processed: ProcessedFrame): Promise<void> {
    const { width, height, channels, data } = processed.result;
    if (channels !== 4) throw new BgrmError('ERR_INVALID_ARGUMENT', 'video output needs RGBA frames (--format rgba, no --background)');
    if (!this.child) {
      await fs.mkdir(path.dirname(this.file), { recursive: true });
      this.start(width, height);
    } else if (this.size!.width !== width || this.size!.height !== height) {
      throw new BgrmError('ERR_VIDEO', `frame ${processed.frame.origin} is ${width}x${height}; the video is ${this.size!.width}x${this.size!.height}`);
    }
    const stdin = this.child!.stdin!;
    await Promise.race([
      new Promise<void>((resolve, reject) => stdin.write(data, (err) => (err ? reject(err) : resolve()))),
      this.exited!.then(() => {
        throw new BgrmError('ERR_VIDEO', 'ffmpeg exited before all frames were written');
      }),
    ]);
    releaseBytes(data);
  }

  async close(): Promise<void> {
    if (!this.child) return;
    this.child.stdin!.end();
    await this.exited;
    await fs.rename(this.tmp, this.file);
  }

  async abort(): Promise<void> {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
    await fs.rm(this.tmp, { force: true });
  }
}
