// What every job asks of the native core per frame (format, background, PNG level, limits), turned
// into process options once, for the local pipeline, the Kafka worker and replay alike.
import { backgroundOptions } from './background';
import { BgrmError } from './errors';
import type { FlowPreset, ProcessOptions } from './native';
import type { OutputFormat } from './output-format';
import type { PipelineProgress } from './pipeline';

export interface RenderJob {
  format: 'rgba' | 'mask';
  background?: string;
  concurrency: number;
  pngLevel: number;
  /** The image format of each output (default PNG) and its quality (WebP: 0 lossless). */
  outputFormat?: OutputFormat;
  outputQuality?: number;
  maxPixels: number;
  onProgress?: (p: PipelineProgress) => void;
  signal?: AbortSignal;
  /**
   * Temporal matting per stream (a video, a camera): true/false, or undefined for the default
   * (on for videos and Kafka streams, off for photos).
   */
  temporal?: boolean;
  /**
   * With temporal matting: the model runs on every K-th frame, optical flow carries the rest;
   * 'auto': when the carried matte's edge has become unreliable (at least every 4th frame).
   */
  keyframeInterval?: KeyframeInterval;
  /** Optical-flow preset for temporal matting (default patch). */
  flow?: FlowPreset;
}

export type KeyframeInterval = number | 'auto';
/** The most frames between model runs with adaptive keyframes (native KeyframePolicy.maxInterval). */
export const AUTO_MAX_INTERVAL = 4;

/** The native core's keyframeInterval: 0 for adaptive. */
export function nativeKeyframeInterval(k: KeyframeInterval | undefined): number {
  return k === 'auto' ? 0 : (k ?? 1);
}

/** `--keyframe-interval` as given: 'auto' or a whole number 1-30. */
export function parseKeyframeInterval(value: string): KeyframeInterval {
  if (value === 'auto') return 'auto';
  const k = Number(value);
  if (!Number.isInteger(k) || k < 1 || k > 30) throw new BgrmError('ERR_USAGE', `--keyframe-interval must be auto or a whole number from 1 to 30, not '${value}'`);
  return k;
}

export const FLOW_PRESETS: readonly FlowPreset[] = ['ultrafast', 'fast', 'patch', 'medium'];
export const DEFAULT_FLOW: FlowPreset = 'patch';

/**
 * --fast, for process and replay alike: adaptive keyframes (with the int8 model, chosen by the
 * command): the model runs when the carried matte's edge has become unreliable, at least every 4th
 * frame (README: --fast).
 */
export const FAST_SETTINGS: { keyframeInterval: KeyframeInterval; flow: FlowPreset } = { keyframeInterval: 'auto', flow: DEFAULT_FLOW };

/**
 * Frames in flight by default. With keyframes, a keyframe's model run holds up its stream (frames
 * settle in order), so the frames up to the next keyframe must already be in flight for the other
 * model run to have work: two intervals and two more (4 for every frame; 8 for every 3rd,
 * measured about 15% more frames/s than 4), and at most 16, as each holds a decoded frame.
 */
export function defaultConcurrency(keyframeInterval: KeyframeInterval = 1): number {
  const k = keyframeInterval === 'auto' ? AUTO_MAX_INTERVAL : keyframeInterval;
  return Math.min(16, Math.max(4, 2 * k + 2));
}

/**
 * A command's temporal flags with its defaults filled in (--fast's where it is given): process and
 * replay share this, so a replay with a worker's flags repeats its settings exactly.
 */
export function temporalSettings(flags: { fast: boolean; keyframeInterval?: string; flow?: string; concurrency?: number }): {
  keyframeInterval: KeyframeInterval;
  flow: FlowPreset;
  concurrency: number;
} {
  const keyframeInterval = flags.keyframeInterval !== undefined ? parseKeyframeInterval(flags.keyframeInterval) : flags.fast ? FAST_SETTINGS.keyframeInterval : 1;
  return {
    keyframeInterval,
    flow: (flags.flow ?? (flags.fast ? FAST_SETTINGS.flow : DEFAULT_FLOW)) as FlowPreset,
    concurrency: flags.concurrency ?? defaultConcurrency(keyframeInterval),
  };
}

/** The native process options of a job; `raw` for pixels (an alpha video), else the job's image format. */
export async function renderOptions(job: RenderJob, raw = false): Promise<ProcessOptions> {
  return {
    output: job.format,
    encoding: raw ? 'raw' : (job.outputFormat ?? 'png'),
    quality: job.outputQuality ?? 0,
    pngLevel: job.pngLevel,
    maxPixels: job.maxPixels,
    ...(await backgroundOptions(job.background)),
  };
}
