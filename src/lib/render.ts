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
 * The named settings, for process and replay alike. Each runs the int8 copy of its float model
 * (made once by the command, see quantize/install.ts presetModel); for videos and streams:
 *   fast: u2netp-int8 with adaptive keyframes (the model runs when the carried matte's edge has
 *         become unreliable, at least every 4th frame): the small model's quality at about 4x its
 *         float speed;
 *   best: u2net-int8 with temporal matting and the model on every frame: the full U-2-Net's
 *         quality at the small float model's speed. Adaptive keyframes ran it at 1.8x that speed
 *         but lost up to 0.035 IoU to u2netp on 7 of 22 sequences (README: Models and settings).
 */
export type Preset = 'fast' | 'best';
export interface PresetSettings {
  /** The float model whose int8 copy runs. */
  model: string;
  keyframeInterval: KeyframeInterval;
  flow: FlowPreset;
}
export const PRESETS: Readonly<Record<Preset, PresetSettings>> = {
  fast: { model: 'u2netp', keyframeInterval: 'auto', flow: DEFAULT_FLOW },
  best: { model: 'u2net', keyframeInterval: 1, flow: DEFAULT_FLOW },
};
export const FAST_SETTINGS = PRESETS.fast;

/** The flag whose preset runs (and so makes) the int8 copy of float model `name`, or undefined. */
export function presetFlagFor(name: string): `--${Preset}` | undefined {
  const preset = (Object.keys(PRESETS) as Preset[]).find((p) => PRESETS[p].model === name);
  return preset && `--${preset}`;
}

/** The preset a command's --fast / --best ask for (oclif keeps them exclusive), or undefined. */
export function presetOf(flags: { fast?: boolean; best?: boolean }): Preset | undefined {
  return flags.best ? 'best' : flags.fast ? 'fast' : undefined;
}

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
 * A command's temporal flags with its defaults filled in (the preset's where --fast or --best is
 * given): process and replay share this, so a replay with a worker's flags repeats its settings exactly.
 */
export function temporalSettings(flags: { preset?: Preset; keyframeInterval?: string; flow?: string; concurrency?: number }): {
  keyframeInterval: KeyframeInterval;
  flow: FlowPreset;
  concurrency: number;
} {
  const preset = flags.preset ? PRESETS[flags.preset] : undefined;
  const keyframeInterval = flags.keyframeInterval !== undefined ? parseKeyframeInterval(flags.keyframeInterval) : (preset?.keyframeInterval ?? 1);
  return {
    keyframeInterval,
    flow: (flags.flow ?? preset?.flow ?? DEFAULT_FLOW) as FlowPreset,
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
