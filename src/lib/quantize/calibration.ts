// Calibration frames for the quantiser: a folder of images, one image, or frames of a video
// (through ffmpeg), as the model's input tensors, with a hash that names the set.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BgrmError, errorMessage } from '../errors';
import { collectStderr, ffmpegMissing, probeVideo, spawnFfmpeg, waitForExit } from '../ffmpeg';
import { native } from '../native';
import { IMAGE_EXTENSIONS, isVideoPath } from '../paths';
import { DEFAULT_CALIBRATION_FRAMES, MIN_CALIBRATION_FRAMES, type ModelInputSpec } from './plan';

export interface CalibrationSet {
  /** Model input tensors, one per frame. */
  tensors: Float32Array[];
  /** sha256 over the tensors: identifies the calibration data. */
  hash: string;
  source: string;
}

async function listImages(dir: string): Promise<string[]> {
  const names = (await fs.readdir(dir)).filter((f) => IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase())).sort();
  return names.map((f) => path.join(dir, f));
}

function evenlySpaced<T>(items: T[], count: number): T[] {
  if (items.length <= count) return items;
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(items[Math.floor((i * items.length) / count)]);
  return out;
}

/** Extracts frames 0, step, 2·step, … (at most count) of a video as lossless PNG files. */
async function extractVideoFrames(video: string, count: number, step: number, dir: string): Promise<string[]> {
  const child = spawnFfmpeg('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-i', video,
    '-vf', `select=not(mod(n\\,${step}))`, '-fps_mode', 'vfr', '-frames:v', String(count),
    path.join(dir, '%05d.png'),
  ]);
  child.on('error', () => undefined);
  const tail = collectStderr(child);
  try {
    await waitForExit(child, 'ffmpeg (calibration frames)', tail);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw ffmpegMissing();
    throw err;
  }
  return listImages(dir);
}

/**
 * Reads calibration frames from a folder of images (evenly spaced, at most `count`), a single
 * image, or a video (its first frames, every `step`-th), as the exact tensors the pipeline feeds.
 */
export async function loadCalibration(source: string, input: ModelInputSpec, count = DEFAULT_CALIBRATION_FRAMES, step = 3): Promise<CalibrationSet> {
  const st = await fs.stat(source).catch(() => undefined);
  if (!st) throw new BgrmError('ERR_CALIBRATION', `calibration source not found: ${source}. Pass a folder of images or a video with --calibration`);
  let files: string[];
  let tmp: string | undefined;
  if (st.isDirectory()) {
    files = evenlySpaced(await listImages(source), count);
  } else if (isVideoPath(source)) {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-calib-'));
    // a short clip is sampled more densely, so that it still gives enough frames
    const frames = (await probeVideo(source).catch(() => undefined))?.frames;
    const videoStep = frames ? Math.max(1, Math.min(step, Math.floor(frames / MIN_CALIBRATION_FRAMES))) : step;
    files = await extractVideoFrames(source, count, videoStep, tmp);
  } else {
    files = [source];
  }
  try {
    if (files.length === 0) {
      throw new BgrmError('ERR_CALIBRATION', `no images (.jpg, .jpeg, .png) found in ${source} to calibrate on`);
    }
    const hash = createHash('sha256');
    const tensors: Float32Array[] = [];
    for (const file of files) {
      let t: Float32Array;
      try {
        t = await native().modelInput(await fs.readFile(file), input);
      } catch (err) {
        throw new BgrmError('ERR_CALIBRATION', `calibration frame ${file} cannot be used: ${errorMessage(err)}`);
      }
      hash.update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
      tensors.push(t);
    }
    return { tensors, hash: hash.digest('hex'), source };
  } finally {
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  }
}
