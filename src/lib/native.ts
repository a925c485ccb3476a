// The one typed facade over the C++ addon (build/Release/bgrm.node).
import * as path from 'node:path';
import { BgrmError } from './errors';

export interface SegmenterOptions {
  modelPath: string;
  device?: 'cpu' | 'cuda';
  deviceId?: number;
  /** ONNX Runtime intra-op threads (0: one per core). */
  threads?: number;
  /** Let ONNX Runtime threads spin while idle (faster alone, slower when sharing cores). */
  spinning?: boolean;
  /** ONNX Runtime's memory pattern planner (default off: it costs a block per concurrent run). */
  memoryPattern?: boolean;
  /** One process-wide CPU arena extended by what is asked (default on). */
  sharedArena?: boolean;
  /** ONNX Runtime's buffer reuse plan (default off on CPU: tensors are freed when last read). */
  memoryReuse?: boolean;
  /** Threads for decode/resize/matte/encode. */
  cpuThreads?: number;
  inferenceThreads?: number;
  /** Model input size when the model's own input shape is dynamic. */
  width?: number;
  height?: number;
  mean?: [number, number, number];
  std?: [number, number, number];
}

export interface SegmenterInfo {
  inputName: string;
  outputName: string;
  inputWidth: number;
  inputHeight: number;
  device: string;
  threads: number;
  /** Whether ONNX Runtime's buffer reuse plan runs (off by default on CPU where it can be turned off). */
  memoryReuse: boolean;
}

export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

/**
 * Optical flow for temporal matting (OpenCV's DIS): patch (the default) is DIS's medium preset
 * without variational refinement, on a sparser patch grid, in about a third of medium's time;
 * ultrafast, fast and medium are OpenCV's presets.
 */
export type FlowPreset = 'ultrafast' | 'fast' | 'patch' | 'medium';

/** How a result is encoded: an image file format, or raw pixels. */
export type Encoding = 'png' | 'webp' | 'jpeg' | 'raw';

export interface ProcessOptions {
  output?: 'rgba' | 'mask';
  encoding?: Encoding;
  pngLevel?: number;
  /** WebP: 0 lossless (default), 1-100 lossy; JPEG: 1-100 (default 90). */
  quality?: number;
  pngFilter?: 'none' | 'sub' | 'up' | 'paeth' | 'all';
  /** The input is raw RGB pixels of this size, not an encoded image. */
  raw?: { width: number; height: number };
  /** Composite over a solid colour (RGB 0-255). */
  color?: [number, number, number];
  /** Composite over an image (raw RGB, resized to cover each frame). */
  background?: RawImage;
  maxPixels?: number;
  maxSide?: number;
  /**
   * A frame of a video stream (frames of one stream submitted in order): temporal matting carries
   * the stream's matte along optical flow; a gap in `frame` or a scene cut starts afresh. With
   * `smooth`, frames between model runs are held (at most `maxHold`, fewer than the frames the
   * caller keeps in flight) until the next run, whose matte is carried back to them: for files,
   * not for live streams. `flushStream` lets held frames go at the end of the input. `roi` (default
   * true): with adaptive keyframes, a model that takes any input size (an int8 model made by
   * `models quantize`) runs on the region around the subject, and on the whole frame at least every
   * 4th run.
   */
  temporal?: { stream: string; frame: number; flow?: FlowPreset; smooth?: boolean; maxHold?: number; roi?: boolean };
  /**
   * With `temporal`: 1 runs the model on every frame (default), K > 1 on every K-th, 0 when the
   * carried matte's edge has become unreliable (adaptive; at least every 4th frame).
   */
  keyframeInterval?: number;
}

export interface StageTimings {
  decodeMs: number;
  resizeMs: number;
  queueMs: number;
  inferMs: number;
  matteMs: number;
  encodeMs: number;
  totalMs: number;
}

export interface ProcessResult extends RawImage {
  timings: StageTimings;
  /** Model runs made on this frame: 0 (its matte was carried) or 1. */
  modelRuns: number;
  /** Of those, runs on the region around the subject (temporal.roi) instead of the whole frame. */
  regionRuns: number;
}

export interface NativeSegmenter {
  load(): Promise<SegmenterInfo>;
  process(input: Buffer, options?: ProcessOptions): Promise<ProcessResult>;
  info(): SegmenterInfo;
  /** No more frames of this stream for now: frames held for smoothing leave with what is known. */
  flushStream(stream: string): void;
  /** Forgets a stream's temporal state (after flushing it). */
  endStream(stream: string): void;
  close(): void;
}

interface Addon {
  Segmenter: new (options: SegmenterOptions) => NativeSegmenter;
  versions(): { onnxruntime: string; jpeg: string; png: string; images: string; napi: number };
  /** The image format the first bytes name (JPEG, PNG, WebP, TIFF, GIF, BMP, HEIF/AVIF), or null. */
  imageFormat(head: Buffer): string | null;
  providers(): string[];
  /** `via: 'libvips'` takes libvips for JPEG and PNG too (the benchmark's comparison with the fast paths). */
  decode(input: Buffer, options?: { maxPixels?: number; maxSide?: number; channels?: 3 | 4; via?: 'libvips' }): Promise<RawImage>;
  encodePng(pixels: Buffer, width: number, height: number, channels: number, level: number, filter?: string): Promise<Buffer>;
  encodeJpeg(rgb: Buffer, width: number, height: number, quality: number): Promise<Buffer>;
  /** The NCHW float tensor the segmenter would feed its model for this image. */
  modelInput(
    image: Buffer,
    options: { width: number; height: number; mean: number[]; std: number[]; maxPixels?: number; maxSide?: number },
  ): Promise<Float32Array>;
  /** Frees a Buffer that is the whole of its ArrayBuffer now (it is empty afterwards); false otherwise. */
  release(bytes: Buffer): boolean;
  /** The mmap threshold set for glibc's malloc when the core loaded (BGRM_MMAP_THRESHOLD, 1 MiB by default); 0 where glibc's own stands. */
  mmapThreshold: number;
}

export const projectRoot = path.resolve(__dirname, '..', '..');

let addon: Addon | undefined;

export function native(): Addon {
  if (!addon) {
    const file = path.join(projectRoot, 'build', 'Release', 'bgrm.node');
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(file) as Addon;
    } catch (err) {
      throw new BgrmError(
        'ERR_NATIVE_MISSING',
        `cannot load the native core (${file}): ${(err as Error).message}. Build it with: npm run build:native`,
      );
    }
  }
  return addon;
}

/**
 * Frees bytes that nothing will read again (a result a sink has written, a settled frame's input)
 * now, instead of at V8's next full collection: until then dead Buffers of 0.1-1.6 MB a frame pile
 * up by tens of MB. Measured (`bgrm process` of 200 854x480 JPEGs, u2netp-int8): peak RSS 270-278
 * MiB without (up to 309 in earlier runs), 257-264 with results freed (alternated), 250-252 in four
 * runs of five with frames freed too. Only the caller's own bytes may be passed: anything else that
 * holds them sees an empty Buffer afterwards.
 */
export function releaseBytes(bytes: Buffer): void {
  try {
    native().release(bytes);
  } catch {
    // not detachable (memory owned elsewhere): V8 frees it as before
  }
}
