// The pipeline: pulls frames from a source, keeps a bounded number in the native core at once,
// and hands results to the sink in source order. Shared by every command that processes frames.
import type { Frame, FrameSink, FrameSource } from './frame';
import { errorCode, errorMessage } from './errors';
import { peakRssBytes } from './rss';
import { releaseBytes, type FlowPreset, type NativeSegmenter, type ProcessOptions, type ProcessResult, type StageTimings } from './native';
import { nativeKeyframeInterval, type KeyframeInterval } from './render';

export interface FrameFailure {
  origin: string;
  frameNumber: number;
  code: string;
  message: string;
}

export interface PipelineSummary {
  frames: number;
  succeeded: number;
  failed: number;
  /** Frames deliberately not processed (stale in live mode). */
  skipped: number;
  failures: FrameFailure[];
  seconds: number;
  framesPerSecond: number;
  /** True when the run was stopped early by its signal. */
  interrupted: boolean;
  /** Mean milliseconds per frame in each stage (native stages, plus the sink's write). */
  stageMs: Record<keyof StageTimings | 'writeMs', number>;
  /** Model runs on the frames written (the others were carried by optical flow between keyframes). */
  modelRuns: number;
  /** Of those, runs on the region around the subject only (--fast with an int8 model of recipe 6 on). */
  regionRuns: number;
  /**
   * Live depth: frames already in flight when a frame arrived (mean and most). A caught-up stream
   * stays near 0-2; a source that is ahead (a file, a backlog) fills the pipeline to --concurrency.
   */
  depth: { mean: number; max: number };
  /** The process's peak resident memory so far, in bytes (the model, frames in flight, everything). */
  peakRssBytes: number;
}

/** Running mean and maximum of the frames in flight at each arrival. */
export class DepthStats {
  private sum = 0;
  private count = 0;
  private max = 0;
  add(n: number): void {
    this.sum += n;
    this.count++;
    this.max = Math.max(this.max, n);
  }
  summary(): { mean: number; max: number } {
    return { mean: this.count ? Math.round((this.sum / this.count) * 100) / 100 : 0, max: this.max };
  }
}

export interface PipelineProgress {
  done: number;
  failed: number;
  total?: number;
  elapsedMs: number;
  /** Frames in the pipeline after this one settled (submitted, not yet written). */
  inFlight: number;
}

export interface PipelineOptions {
  source: FrameSource;
  sink: FrameSink;
  segmenter: NativeSegmenter;
  processOptions: ProcessOptions;
  /** Frames in flight at once (decode, inference, encode overlap between them). */
  concurrency: number;
  onProgress?: (p: PipelineProgress) => void;
  /** Stop reporting every failure beyond this many (they are still counted). */
  maxReportedFailures?: number;
  /**
   * Called for every frame once its output is written or its failure recorded, in source order;
   * a Kafka worker sends failures to the dead-letter topic here and then marks the offset done.
   * A rejection stops the run.
   */
  afterFrame?: (frame: Frame, error?: { code: string; message: string }) => Promise<void>;
  /** Told of every frame written (with its stage timings) and every failure, for metrics. */
  observer?: { written?(frame: Frame, result: ProcessResult): void; failed?(frame: Frame, code: string): void };
  /** When aborted (SIGINT/SIGTERM), no new frame is started; frames in flight finish and are written. */
  signal?: AbortSignal;
  /** Temporal matting: frames of one camera (cameraId) form a stream, in frameNumber order. */
  temporal?: boolean;
  keyframeInterval?: KeyframeInterval;
  flow?: FlowPreset;
  /**
   * Temporal smoothing for a finite source (a video file): frames between model runs wait for the
   * next run, whose matte is carried back to them. Not for live streams (it adds latency).
   */
  smooth?: boolean;
  /** Live depth statistics, when the caller reads them while the run goes on (a worker's status records). */
  depth?: DepthStats;
}

type Outcome = { frame: Frame; result?: ProcessResult; error?: { code: string; message: string }; skipped?: boolean };

export async function runPipeline(opts: PipelineOptions): Promise<PipelineSummary> {
  const started = performance.now();
  const stageTotals: Record<string, number> = {};
  const failures: FrameFailure[] = [];
  const maxReported = opts.maxReportedFailures ?? 1000;
  let frames = 0;
  let succeeded = 0;
  let modelRuns = 0;
  let regionRuns = 0;
  let failed = 0;
  let skipped = 0;
  const inFlight: Promise<Outcome>[] = [];
  const streams = new Set<string>();
  const depth = opts.depth ?? new DepthStats();

  const submit = (frame: Frame): Promise<Outcome> => {
    if (frame.error) return Promise.resolve({ frame, error: frame.error });
    if (frame.skip) return Promise.resolve({ frame, skipped: true });
    let options = frame.raw ? { ...opts.processOptions, raw: frame.raw } : opts.processOptions;
    if (opts.temporal) {
      streams.add(frame.cameraId);
      const temporal = { stream: frame.cameraId, frame: frame.frameNumber, flow: opts.flow, smooth: !!opts.smooth, maxHold: opts.concurrency - 1 };
      options = { ...options, temporal, keyframeInterval: nativeKeyframeInterval(opts.keyframeInterval) };
    }
    return opts.segmenter.process(frame.bytes, options).then(
      (result) => ({ frame, result }),
      (err: unknown) => ({ frame, error: { code: errorCode(err), message: errorMessage(err) } }),
    );
  };

  const settle = async (outcome: Outcome): Promise<void> => {
    frames++;
    if (outcome.skipped) {
      skipped++;
      await opts.afterFrame?.(outcome.frame);
    } else if (outcome.result) {
      const t0 = performance.now();
      // A sink that cannot write (disk full, broken pipe) fails the whole run: later frames would fail too.
      await opts.sink.write({ frame: outcome.frame, result: outcome.result });
      succeeded++;
      modelRuns += outcome.result.modelRuns;
      regionRuns += outcome.result.regionRuns;
      for (const [k, v] of Object.entries(outcome.result.timings)) stageTotals[k] = (stageTotals[k] ?? 0) + v;
      stageTotals.writeMs = (stageTotals.writeMs ?? 0) + (performance.now() - t0);
      await opts.afterFrame?.(outcome.frame);
      opts.observer?.written?.(outcome.frame, outcome.result);
    } else {
      failed++;
      const e = outcome.error ?? { code: 'ERR_INTERNAL', message: 'no result' };
      if (failures.length < maxReported) {
        failures.push({ origin: outcome.frame.origin, frameNumber: outcome.frame.frameNumber, code: e.code, message: e.message });
      }
      await opts.afterFrame?.(outcome.frame, e);
      opts.observer?.failed?.(outcome.frame, e.code);
    }
    if (outcome.frame.owned) releaseBytes(outcome.frame.bytes); // settled: nothing reads them again
    opts.onProgress?.({ done: frames, failed, total: opts.source.total, elapsedMs: performance.now() - started, inFlight: inFlight.length - 1 });
  };

  // Two loops share the queue: one pulls frames and submits them while there is room, the other
  // settles the oldest as soon as it is done. A frame is written when it is ready, not when the
  // next one arrives, so a caught-up live stream keeps only the frames it is working on in flight.
  let pulling = true;
  let wakeSettler: (() => void) | undefined;
  let wakePuller: (() => void) | undefined;
  let settleError: { error: unknown } | undefined;
  const wake = () => {
    wakeSettler?.();
    wakePuller?.();
  };
  const settler = (async () => {
    try {
      for (;;) {
        if (inFlight.length === 0) {
          if (!pulling) return;
          await new Promise<void>((resolve) => (wakeSettler = resolve));
          wakeSettler = undefined;
          continue;
        }
        await settle(await inFlight[0]);
        inFlight.shift();
        wakePuller?.();
      }
    } catch (err) {
      settleError = { error: err };
      wakePuller?.();
    }
  })();
  const iterator = opts.source.frames()[Symbol.asyncIterator]();
  const settlerFailed = settler.then(() => ({ done: true, value: undefined }) as const);
  let exhausted = false;
  let waiting = false; // a next() of the source is still pending (the run ended while it waited)
  try {
    for (;;) {
      if (opts.signal?.aborted || settleError) break;
      // A sink failure ends the run even while the source waits for its next frame.
      waiting = true;
      const pending = iterator.next();
      void pending.then(() => (waiting = false), () => (waiting = false));
      const next = await Promise.race([pending, settlerFailed]);
      if (next.done && !settleError) exhausted = true;
      if (next.done || settleError || opts.signal?.aborted) break;
      depth.add(inFlight.length);
      inFlight.push(submit(next.value));
      wake();
      while (inFlight.length >= opts.concurrency && !settleError) {
        await new Promise<void>((resolve) => (wakePuller = resolve));
        wakePuller = undefined;
      }
    }
  } catch (err) {
    exhausted = true; // a source that threw has ended
    settleError ??= { error: err };
  }
  // A source left early (stopped, or the sink failed) cleans up (a video's decoder is stopped).
  if (!exhausted && !waiting) await iterator.return?.(undefined).catch(() => undefined);
  // No more frames: frames a stream holds for smoothing leave now.
  for (const s of streams) opts.segmenter.flushStream(s);
  pulling = false;
  wake();
  await settler;
  if (settleError) {
    // Let frames already in the native core finish before the error propagates (their buffers are borrowed).
    await Promise.allSettled(inFlight);
    await opts.sink.abort?.();
    await opts.source.close?.();
    throw settleError.error;
  }
  // The sink closes first: a transactional sink commits the consumer's offsets through the source.
  try {
    await opts.sink.close();
  } finally {
    await opts.source.close?.();
    for (const s of streams) opts.segmenter.endStream(s);
  }

  const seconds = (performance.now() - started) / 1000;
  const mean = (k: string) => (succeeded > 0 ? (stageTotals[k] ?? 0) / succeeded : 0);
  return {
    frames,
    succeeded,
    failed,
    skipped,
    failures,
    seconds,
    framesPerSecond: seconds > 0 ? succeeded / seconds : 0,
    interrupted: !!opts.signal?.aborted,
    modelRuns,
    regionRuns,
    depth: depth.summary(),
    peakRssBytes: peakRssBytes(),
    stageMs: {
      decodeMs: mean('decodeMs'),
      resizeMs: mean('resizeMs'),
      queueMs: mean('queueMs'),
      inferMs: mean('inferMs'),
      matteMs: mean('matteMs'),
      encodeMs: mean('encodeMs'),
      totalMs: mean('totalMs'),
      writeMs: mean('writeMs'),
    },
  };
}
