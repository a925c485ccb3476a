// VideoSource: decodes a video file with ffmpeg into raw RGB frames (no re-encoding to JPEG).
import * as path from 'node:path';
import { BgrmError } from '../errors';
import { collectStderr, probeVideo, spawnFfmpeg, waitForExit, type VideoInfo } from '../ffmpeg';
import type { Frame, FrameSource } from '../frame';

export class VideoSource implements FrameSource {
  private constructor(
    private readonly file: string,
    readonly info: VideoInfo,
    private readonly maxFrames?: number,
    private readonly inputArgs: string[] = [],
  ) {}

  /** `inputArgs` go before -i (for a camera: ['-f', 'v4l2']). */
  static async open(file: string, opts: { maxFrames?: number; maxPixels?: number; inputArgs?: string[] } = {}): Promise<VideoSource> {
    const info = await probeVideo(file, opts.inputArgs);
    if (opts.maxPixels && info.width * info.height > opts.maxPixels) {
      throw new BgrmError('ERR_IMAGE_TOO_LARGE', `video ${file} is ${info.width}x${info.height}, over the --max-pixels limit`);
    }
    return new VideoSource(file, info, opts.maxFrames, opts.inputArgs);
  }

  get total(): number | undefined {
    const n = this.info.frames;
    return this.maxFrames !== undefined && n !== undefined ? Math.min(n, this.maxFrames) : (n ?? this.maxFrames);
  }

  get fps(): number {
    return this.info.fps;
  }

  async *frames(): AsyncIterable<Frame> {
    const { width, height } = this.info;
    const frameBytes = width * height * 3;
    const args = ['-hide_banner', '-loglevel', 'error', '-nostdin', ...this.inputArgs, '-i', this.file, '-map', '0:v:0', '-fps_mode', 'passthrough'];
    if (this.maxFrames !== undefined) args.push('-frames:v', String(this.maxFrames));
    args.push('-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1');
    const child = spawnFfmpeg('ffmpeg', args);
    const stderr = collectStderr(child);
    const exited = waitForExit(child, `decoding ${this.file}`, stderr);
    exited.catch(() => undefined); // observed below
    const base = path.basename(this.file);
    let frameNumber = 0;
    let current = Buffer.allocUnsafe(frameBytes);
    let filled = 0;
    try {
      for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
        let offset = 0;
        while (offset < chunk.length) {
          const n = Math.min(frameBytes - filled, chunk.length - offset);
          chunk.copy(current, filled, offset, offset + n);
          filled += n;
          offset += n;
          if (filled === frameBytes) {
            yield {
              bytes: current,
              owned: true,
              raw: { width, height },
              cameraId: base,
              frameNumber,
              timestampMs: Math.round((frameNumber * 1000) / (this.info.fps || 25)),
              origin: `${this.file}#${frameNumber}`,
              name: String(frameNumber).padStart(6, '0'),
            };
            frameNumber++;
            current = Buffer.allocUnsafe(frameBytes);
            filled = 0;
          }
        }
      }
      await exited;
      if (filled !== 0) throw new BgrmError('ERR_VIDEO', `${this.file}: the last frame is incomplete (${filled} of ${frameBytes} bytes)`);
      if (frameNumber === 0) throw new BgrmError('ERR_VIDEO', `${this.file}: no frames could be decoded`);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }
}
