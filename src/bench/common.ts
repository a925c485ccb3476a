// Helpers the benchmarks share: flags, running the CLI as a child process, a models folder of their
// own (so a user's int8 model is left alone) and percentiles.
import { execFile, spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { resolveModel } from '../lib/models';
import { projectRoot } from '../lib/native';
import { installQuantized } from '../lib/quantize';
import { greyOf, iou } from '../lib/quality';

export const cli = path.join(projectRoot, 'bin', 'run.js');

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** Runs `bgrm ARGS`; `onStderrLine` sees each line of its standard error as it comes. */
export function runCli(args: string[], onStderrLine?: (line: string) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      stderr += text;
      if (onStderrLine) for (const line of text.split('\n')) onStderrLine(line);
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `bgrm process ARGS --json`, its summary parsed; rejects when it fails. */
export async function runProcess<T>(args: string[]): Promise<T> {
  const r = await runCli(['process', ...args, '--json']);
  if (r.code !== 0) throw new Error(`bgrm process ${args.join(' ')} failed (${r.code}): ${r.stderr.slice(-500)}`);
  return JSON.parse(r.stdout) as T;
}

/**
 * A models folder under `tmp` (BGRM_MODELS_DIR, for this process and the CLIs it starts) with the
 * float u2netp linked in and u2netp-int8 made from `calibration`, outside any timed run.
 */
export async function benchModels(tmp: string, calibration: string): Promise<{ float: string; int8: string; int8Note: string }> {
  const float = (await resolveModel('u2netp')).path;
  process.env.BGRM_MODELS_DIR = path.join(tmp, 'models');
  await fs.mkdir(process.env.BGRM_MODELS_DIR, { recursive: true });
  await fs.symlink(float, path.join(process.env.BGRM_MODELS_DIR, 'u2netp.onnx'));
  const q = await installQuantized('u2netp', { calibration });
  const note = `int8 ${q.upToDate ? 'already made' : `made in ${q.seconds.toFixed(1)} s`}, ${q.fusion?.qlinearConv ?? '?'} QLinearConv`;
  return { float, int8: q.path, int8Note: note };
}

/** The p-quantile (0-1) of ascending values; 0 for none. */
export function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0;
}

/** The `bgrm process --json` summary fields the video benchmarks read. */
export interface Summary {
  frames: number;
  succeeded: number;
  seconds: number;
  framesPerSecond: number;
  modelRuns: number;
  regionRuns: number;
  peakRssBytes: number;
  stageMs: Record<string, number>;
}

export interface Score {
  iou: number;
  flicker: number;
  frames: number;
  modelRuns: number;
  regionRuns: number;
  seconds: number;
}

const ffmpeg = (args: string[]) => promisify(execFile)('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', ...args]);

/** An H.264 file (24 fps) of a DAVIS folder's JPEGs. */
export async function makeVideo(dir: string, file: string): Promise<void> {
  await ffmpeg(['-framerate', '24', '-i', path.join(dir, '%05d.jpg'), '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', '20', file]);
}

/**
 * Every step-th frame of `video`, cut losslessly (H.264 at qp 0 in the same pixel format): it
 * decodes to exactly the frames that `video` decodes to there, so that a mode run on it and one run
 * on `video` are scored on the same pixels. (Encoded afresh from the JPEGs, the cut's own
 * compression moved one sequence's IoU by 0.027.)
 */
export async function sampleVideo(video: string, file: string, step: number): Promise<void> {
  await ffmpeg(['-i', video, '-vf', `select=not(mod(n\\,${step})),setpts=N/24/TB`, '-c:v', 'libx264', '-qp', '0', '-pix_fmt', 'yuv420p', file]);
}

/**
 * IoU (alpha >= 128 against the mask) and background flicker (between the frames scored) of a
 * folder of output masks (000000.png ...) against a DAVIS folder's ground truth, on every `step`-th
 * frame; `outputStep` is the step of the video the outputs came from (1: every frame, so output i is
 * frame i; `step`: output k is frame k * step).
 */
export async function scoreMasks(outDir: string, gtDir: string, summary: Summary, step = 1, outputStep = 1): Promise<Score> {
  const gtNames = (await fs.readdir(gtDir)).filter((f) => f.endsWith('.png')).sort();
  let iouSum = 0;
  let flickerSum = 0;
  let pairs = 0;
  let scored = 0;
  let prev: { a: Buffer; g: Buffer } | undefined;
  for (let i = 0; i < gtNames.length; i += step) {
    const a = (await greyOf(await fs.readFile(path.join(outDir, `${String(i / outputStep).padStart(6, '0')}.png`)))).data;
    const g = (await greyOf(await fs.readFile(path.join(gtDir, gtNames[i])))).data;
    iouSum += iou(a, g);
    scored++;
    if (prev) {
      let sum = 0;
      let n = 0;
      for (let p = 0; p < a.length; p++) {
        if (g[p] < 128 && prev.g[p] < 128) {
          sum += Math.abs(a[p] - prev.a[p]);
          n++;
        }
      }
      if (n > 0) {
        flickerSum += sum / n / 255;
        pairs++;
      }
    }
    prev = { a, g };
  }
  return { iou: iouSum / scored, flicker: pairs ? flickerSum / pairs : 0, frames: summary.succeeded, modelRuns: summary.modelRuns, regionRuns: summary.regionRuns ?? 0, seconds: summary.seconds };
}

export interface DavisVideo {
  set: string;
  name: string;
  /** The folder of JPEGs and ground-truth PNGs. */
  dir: string;
  video: string;
  /** Every step-th frame of `video`, cut losslessly (`video` itself for step 1). */
  sampled: string;
}

/**
 * Every sequence of davis/ and davis-fast/ under `testdata` (or those named in `only`, comma
 * separated) made into an H.264 file under `tmp`, and with `step` > 1 a lossless cut of its
 * every step-th frame.
 */
export async function davisVideos(testdata: string, tmp: string, only = '', step = 1): Promise<DavisVideo[]> {
  const sets = ['davis', 'davis-fast'].filter((s) => existsSync(path.join(testdata, s)));
  if (sets.length === 0) throw new Error(`no DAVIS frames under ${testdata} (pass --testdata DIR)`);
  const out: DavisVideo[] = [];
  for (const set of sets) {
    for (const name of (await fs.readdir(path.join(testdata, set))).sort()) {
      const dir = path.join(testdata, set, name);
      if (!(await fs.stat(dir)).isDirectory() || (only && !only.split(',').includes(name))) continue;
      const video = path.join(tmp, `${name}.mp4`);
      await makeVideo(dir, video);
      const sampled = step > 1 ? path.join(tmp, `${name}.every${step}.mp4`) : video;
      if (step > 1) await sampleVideo(video, sampled, step);
      out.push({ set, name, dir, video, sampled });
    }
  }
  return out;
}
