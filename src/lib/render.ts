// What every job asks of the native core per frame (format, background, PNG level, limits), turned
// into process options once, for the local pipeline, the Kafka worker and replay alike.
import { backgroundOptions } from './background';
import type { FlowPreset, ProcessOptions } from './native';
import type { PipelineProgress } from './pipeline';

export interface RenderJob {
  format: 'rgba' | 'mask';
  background?: string;
  concurrency: number;
  pngLevel: number;
  maxPixels: number;
  onProgress?: (p: PipelineProgress) => void;
  signal?: AbortSignal;
  /**
   * Temporal matting per stream (a video, a camera): true/false, or undefined for the default
   * (on for videos and Kafka streams, off for photos).
   */
  temporal?: boolean;
  /** With temporal matting: the model runs on every K-th frame, optical flow carries the rest. */
  keyframeInterval?: number;
  /** Optical-flow preset for temporal matting (default patch). */
  flow?: FlowPreset;
}

export const FLOW_PRESETS: readonly FlowPreset[] = ['ultrafast', 'fast', 'patch', 'medium'];
export const DEFAULT_FLOW: FlowPreset = 'patch';

/**
 * --fast, for process and replay alike: keyframes every 3rd frame (with the int8 model, chosen by
 * the command). The fastest setting measured within 0.02 IoU of per-frame float (README: int8 and
 * --fast).
 */
export const FAST_SETTINGS = { keyframeInterval: 3, flow: DEFAULT_FLOW };

/**
 * Frames in flight by default. With keyframes, a keyframe's model run holds up its stream (frames
 * settle in order), so the frames up to the next keyframe must already be in flight for the other
 * model run to have work: two intervals and two more (4 for every frame; 8 for --fast's every 3rd,
 * measured about 15% more frames/s than 4), and at most 16, as each holds a decoded frame.
 */
export function defaultConcurrency(keyframeInterval = 1): number {
  return Math.min(16, Math.max(4, 2 * keyframeInterval + 2));
}

/**
 * A command's temporal flags with its defaults filled in (--fast's where it is given): process and
 * replay share this, so a replay with a worker's flags repeats its settings exactly.
 */
export function temporalSettings(flags: { fast: boolean; keyframeInterval?: number; flow?: string; concurrency?: number }): {
  keyframeInterval: number;
  flow: FlowPreset;
  concurrency: number;
} {
  const keyframeInterval = flags.keyframeInterval ?? (flags.fast ? FAST_SETTINGS.keyframeInterval : 1);
  return {
    keyframeInterval,
    flow: (flags.flow ?? (flags.fast ? FAST_SETTINGS.flow : DEFAULT_FLOW)) as FlowPreset,
    concurrency: flags.concurrency ?? defaultConcurrency(keyframeInterval),
  };
}

export async function renderOptions(job: RenderJob, encoding: 'png' | 'raw' = 'png'): Promise<ProcessOptions> {
  return { output: job.format, encoding, pngLevel: job.pngLevel, maxPixels: job.maxPixels, ...(await backgroundOptions(job.background)) };
}
