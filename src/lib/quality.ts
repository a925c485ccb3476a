// Quality measures for mattes, shared by the tests and the benchmark: alpha extraction, MAE, IoU.
import { native, type RawImage } from './native';

export async function alphaOf(png: Buffer): Promise<RawImage> {
  const rgba = await native().decode(png, { channels: 4 });
  const a = Buffer.allocUnsafe(rgba.width * rgba.height);
  for (let i = 0; i < a.length; i++) a[i] = rgba.data[i * 4 + 3];
  return { data: a, width: rgba.width, height: rgba.height, channels: 1 };
}

/** Grey values of a mask PNG (or any PNG: its first channel). */
export async function greyOf(png: Buffer): Promise<RawImage> {
  const rgb = await native().decode(png, { channels: 3 });
  const g = Buffer.allocUnsafe(rgb.width * rgb.height);
  for (let i = 0; i < g.length; i++) g[i] = rgb.data[i * 3];
  return { data: g, width: rgb.width, height: rgb.height, channels: 1 };
}

export function meanAbsError(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`size mismatch ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length / 255;
}

/** IoU of (alpha >= 128) against (mask >= 128). */
export function iou(alpha: Uint8Array, mask: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < alpha.length; i++) {
    const p = alpha[i] >= 128;
    const g = mask[i] >= 128;
    if (p && g) inter++;
    if (p || g) union++;
  }
  return union === 0 ? 1 : inter / union;
}

export interface SequenceScore {
  sequence: string;
  frames: number;
  iou: number;
  mae: number;
}

/**
 * Scores a DAVIS-style folder (NNNNN.jpg beside its NNNNN.png ground truth): mean IoU and MAE of
 * the model's mask, every `step`-th frame, with a few frames in flight.
 */
export async function scoreSequence(
  segmenter: import('./native').NativeSegmenter,
  dir: string,
  opts: { step?: number; concurrency?: number } = {},
): Promise<SequenceScore> {
  const { promises: fs } = await import('node:fs');
  const path = await import('node:path');
  const step = opts.step ?? 1;
  const names = (await fs.readdir(dir)).filter((f) => f.endsWith('.jpg')).sort().filter((_, i) => i % step === 0);
  let iouSum = 0;
  let maeSum = 0;
  const score = async (name: string) => {
    const [jpg, gtPng] = await Promise.all([fs.readFile(path.join(dir, name)), fs.readFile(path.join(dir, name.replace(/\.jpg$/, '.png')))]);
    const [r, gt] = await Promise.all([segmenter.process(jpg, { output: 'mask', encoding: 'raw' }), greyOf(gtPng)]);
    iouSum += iou(r.data, gt.data);
    maeSum += meanAbsError(r.data, gt.data);
  };
  const inFlight = new Set<Promise<void>>();
  for (const name of names) {
    const p = score(name).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= (opts.concurrency ?? 2)) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return { sequence: path.basename(dir), frames: names.length, iou: iouSum / names.length, mae: maeSum / names.length };
}

export interface VideoScore extends SequenceScore {
  /** Mean |alpha_t - alpha_t-1| / 255 over pixels that are background in both ground-truth frames. */
  flicker: number;
  /** Frames per second through the segmenter (decode to mask), this sequence. */
  fps: number;
  /** Frames the model ran on (fewer than `frames` with keyframes). */
  modelRuns: number;
  /** Of those, runs on the region around the subject only. */
  regionRuns: number;
}

/**
 * Scores a DAVIS-style folder as a video: every frame in order (a few in flight), per-frame or
 * with temporal matting (`temporal`, `keyframeInterval`), giving IoU, MAE and background flicker.
 */
export async function scoreVideo(
  segmenter: import('./native').NativeSegmenter,
  dir: string,
  opts: {
    temporal?: boolean;
    keyframeInterval?: import('./render').KeyframeInterval;
    flow?: import('./native').FlowPreset;
    /** Smoothing, as for a video file (see PipelineOptions.smooth). */
    smooth?: boolean;
    /** Adaptive keyframes may run the model on the region around the subject (default true). */
    roi?: boolean;
    concurrency?: number;
    maxFrames?: number;
  } = {},
): Promise<VideoScore> {
  const { promises: fs } = await import('node:fs');
  const path = await import('node:path');
  const names = (await fs.readdir(dir)).filter((f) => f.endsWith('.jpg')).sort().slice(0, opts.maxFrames);
  const stream = `score:${dir}:${Math.random()}`;
  const { defaultConcurrency, nativeKeyframeInterval } = await import('./render');
  const concurrency = opts.concurrency ?? (opts.temporal ? defaultConcurrency(opts.keyframeInterval) : 3);
  const started = performance.now();
  // A stream's order is the order of process() calls, so reads (which may finish in any order) are
  // chained: each frame is submitted after the one before it was submitted (not finished).
  let submitted: Promise<unknown> = Promise.resolve();
  const run = (name: string, i: number) => {
    const read = fs.readFile(path.join(dir, name));
    const submission = submitted.then(() => read).then((jpg) => ({
      result: segmenter.process(jpg, {
        output: 'mask',
        encoding: 'raw',
        ...(opts.temporal
          ? { temporal: { stream, frame: i, flow: opts.flow, smooth: !!opts.smooth, maxHold: concurrency - 1, roi: opts.roi ?? true }, keyframeInterval: nativeKeyframeInterval(opts.keyframeInterval) }
          : {}),
      }),
    }));
    submitted = submission;
    return submission.then((s) => s.result);
  };
  // submit in order, settle in order
  const pending: Promise<RawImage>[] = [];
  const masks: RawImage[] = [];
  let modelRuns = 0;
  let regionRuns = 0;
  let next = 0;
  let flushed = false;
  while (masks.length < names.length) {
    while (next < names.length && pending.length < concurrency) {
      pending.push(run(names[next], next));
      next++;
    }
    if (next === names.length && opts.temporal && !flushed) {
      flushed = true;
      await submitted; // the last frame is in: frames held for smoothing may leave
      segmenter.flushStream(stream);
    }
    const r = (await pending.shift()!) as RawImage & { modelRuns: number; regionRuns: number };
    modelRuns += r.modelRuns;
    regionRuns += r.regionRuns;
    masks.push(r);
  }
  const seconds = (performance.now() - started) / 1000;
  if (opts.temporal) segmenter.endStream(stream);
  let iouSum = 0;
  let maeSum = 0;
  let flickerSum = 0;
  let flickerPairs = 0;
  let prevGt: RawImage | undefined;
  for (let i = 0; i < names.length; i++) {
    const gt = await greyOf(await fs.readFile(path.join(dir, names[i].replace(/\.jpg$/, '.png'))));
    iouSum += iou(masks[i].data, gt.data);
    maeSum += meanAbsError(masks[i].data, gt.data);
    if (prevGt) {
      let sum = 0;
      let n = 0;
      const a = masks[i].data;
      const b = masks[i - 1].data;
      for (let p = 0; p < a.length; p++) {
        if (gt.data[p] < 128 && prevGt.data[p] < 128) {
          sum += Math.abs(a[p] - b[p]);
          n++;
        }
      }
      if (n > 0) {
        flickerSum += sum / n / 255;
        flickerPairs++;
      }
    }
    prevGt = gt;
  }
  return {
    sequence: path.basename(dir),
    frames: names.length,
    iou: iouSum / names.length,
    mae: maeSum / names.length,
    flicker: flickerPairs ? flickerSum / flickerPairs : 0,
    fps: names.length / seconds,
    modelRuns,
    regionRuns,
  };
}
