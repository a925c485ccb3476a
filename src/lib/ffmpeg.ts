// ffmpeg/ffprobe helpers: probing a video and reporting a missing or failing ffmpeg clearly.
import { spawn, type ChildProcess } from 'node:child_process';
import { BgrmError } from './errors';

export interface VideoInfo {
  width: number;
  height: number;
  fps: number;
  frames?: number;
}

const INSTALL_HINT = 'install ffmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg) or put it on PATH';

export function spawnFfmpeg(cmd: 'ffmpeg' | 'ffprobe', args: string[]): ChildProcess {
  return spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Resolves with stdout; rejects with a BgrmError naming the problem. */
export function runFfprobe(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('ffprobe', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new BgrmError('ERR_FFMPEG_MISSING', `ffprobe was not found: ${INSTALL_HINT}`) : e),
    );
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new BgrmError('ERR_VIDEO', `ffprobe failed: ${err.trim()}`))));
  });
}

export async function probeVideo(file: string, inputArgs: string[] = []): Promise<VideoInfo> {
  const live = inputArgs.length > 0; // a camera has no packet count to read
  const out = await runFfprobe([
    ...inputArgs,
    '-v', 'error', '-select_streams', 'v:0', ...(live ? [] : ['-count_packets']),
    '-show_entries', 'stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,nb_read_packets', '-of', 'json', file,
  ]).catch((e: BgrmError) => {
    if (e.code === 'ERR_VIDEO') throw new BgrmError('ERR_VIDEO', `cannot read video ${file}: ${e.message.replace(/^ffprobe failed: /, '')}`);
    throw e;
  });
  const stream = (JSON.parse(out) as { streams?: Record<string, string | number>[] }).streams?.[0];
  if (!stream || !stream.width || !stream.height) throw new BgrmError('ERR_VIDEO', `${file} has no video stream`);
  const rate = (r: unknown) => {
    const [n, d] = String(r ?? '0/1').split('/').map(Number);
    return d ? n / d : 0;
  };
  const fps = rate(stream.avg_frame_rate) || rate(stream.r_frame_rate) || 25;
  const frames = Number(stream.nb_read_packets ?? stream.nb_frames) || undefined;
  return { width: Number(stream.width), height: Number(stream.height), fps, frames };
}

export function ffmpegMissing(): BgrmError {
  return new BgrmError('ERR_FFMPEG_MISSING', `ffmpeg was not found: ${INSTALL_HINT}`);
}

/** Waits for a child to exit; rejects with its stderr tail when it fails. */
export function waitForExit(child: ChildProcess, what: string, stderrTail: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) {
      return child.exitCode === 0 ? resolve() : reject(new BgrmError('ERR_VIDEO', `${what} failed: ${stderrTail().trim()}`));
    }
    child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? ffmpegMissing() : e));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new BgrmError('ERR_VIDEO', `${what} failed (exit ${code}): ${stderrTail().trim()}`))));
  });
}

export function collectStderr(child: ChildProcess, limit = 4000): () => string {
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-limit)));
  return () => tail;
}
