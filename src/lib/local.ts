// The local pipeline (no broker): choose a source and a sink from the inputs and -o, then run.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BgrmError } from './errors';
import type { FrameSink, FrameSource } from './frame';
import { extensionOf, formatOfPath } from './output-format';
import { isVideoPath } from './paths';
import { runPipeline, type PipelineSummary } from './pipeline';
import { renderOptions, type KeyframeInterval, type RenderJob } from './render';
import { openSegmenter, threadLayout, type SegmenterConfig } from './segmenter';
import { FileSink } from './sinks/files';
import { StdoutSink } from './sinks/stdout';
import { VideoSink, isAlphaVideoPath } from './sinks/video';
import { FileSource, listImageInputs, type IgnoredFile } from './sources/files';
import { StdinSource } from './sources/stdin';
import { VideoSource } from './sources/video';

export interface LocalJob extends SegmenterConfig, RenderJob {
  inputs: string[];
  output?: string;
  maxFrames?: number;
}

export interface LocalSummary extends PipelineSummary {
  model: string;
  device: string;
  threads: number;
  /** Model runs at once (each with `threads` threads). */
  parallelRuns: number;
  output: string;
  temporal: boolean;
  keyframeInterval: KeyframeInterval;
  /** Frames between model runs were smoothed with the next run (a video file with keyframes). */
  smoothed: boolean;
  /** Files in input folders that were not taken (not images), each with a code and the reason. */
  ignoredFiles: IgnoredFile[];
}

async function isDirectory(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isDirectory(), () => false);
}

function usage(message: string): BgrmError {
  return new BgrmError('ERR_USAGE', message);
}

interface Plan {
  source: FrameSource;
  sink: FrameSink;
  /** Raw pixels (an alpha video) rather than image files. */
  raw: boolean;
  output: string;
  /** A video: its frames are one stream (temporal matting by default). */
  video?: boolean;
  /** Files in input folders that are not images. */
  ignored?: IgnoredFile[];
}

async function plan(job: LocalJob): Promise<Plan> {
  const { inputs, output } = job;
  const ext = extensionOf(job.outputFormat ?? 'png');
  if (inputs.length === 0) throw usage('no input given: pass image files, folders, a video file, or - for standard input');
  if (inputs.includes('-')) {
    if (inputs.length > 1) throw usage('- (standard input) cannot be combined with other inputs');
    if (!output || output === '-') return { source: new StdinSource(), sink: new StdoutSink(), raw: false, output: '-' };
    const file = (await isDirectory(output)) ? path.join(output, `stdin${ext}`) : output;
    return { source: new StdinSource(), sink: new FileSink({ file }), raw: false, output: file };
  }
  if (!output) throw usage('missing -o/--output: a file, a folder, a .webm/.mov video, or - for standard output');

  if (inputs.length === 1 && isVideoPath(inputs[0])) {
    const source = await VideoSource.open(inputs[0], { maxFrames: job.maxFrames, maxPixels: job.maxPixels });
    if (isAlphaVideoPath(output)) {
      if (job.format !== 'rgba' || job.background) throw usage('a .webm/.mov output carries alpha: use it without --format mask or --background');
      return { source, sink: new VideoSink(output, source.fps), raw: true, output, video: true };
    }
    if (output === '-' || formatOfPath(output)) {
      throw usage(`a video gives many frames: -o must be a folder (000000${ext}, ...) or a .webm/.mov file`);
    }
    return { source, sink: new FileSink({ folder: output, extension: ext }), raw: false, output, video: true };
  }

  const { entries, ignored } = await listImageInputs(inputs);
  const single = inputs.length === 1 && entries.length === 1 && !(await isDirectory(inputs[0]));
  if (output === '-') {
    if (!single) throw usage('-o - (standard output) takes exactly one input image');
    return { source: new FileSource(entries), sink: new StdoutSink(), raw: false, output, ignored };
  }
  if (single && !(await isDirectory(output)) && !output.endsWith('/') && !output.endsWith(path.sep)) {
    return { source: new FileSource(entries), sink: new FileSink({ file: output }), raw: false, output, ignored };
  }
  return { source: new FileSource(entries), sink: new FileSink({ folder: output, extension: ext }), raw: false, output, ignored };
}

/** Runs a local job end to end; frame failures are in the summary, setup failures throw. */
export async function runLocal(job: LocalJob): Promise<LocalSummary> {
  const p = await plan(job);
  const processOptions = await renderOptions(job, p.raw);
  const { segmenter, model, info } = await openSegmenter(job);
  const temporal = job.temporal ?? !!p.video;
  // a file is read to its end: frames between model runs can wait for the next run (no live viewer)
  const smoothed = temporal && !!p.video && (job.keyframeInterval ?? 1) !== 1;
  try {
    const summary = await runPipeline({
      source: p.source,
      sink: p.sink,
      segmenter,
      processOptions,
      concurrency: job.concurrency,
      onProgress: job.onProgress,
      signal: job.signal,
      // photos are unrelated unless asked (--temporal treats sorted files as one sequence)
      temporal,
      keyframeInterval: job.keyframeInterval,
      flow: job.flow,
      smooth: smoothed,
    });
    return { ...summary, temporal, keyframeInterval: job.keyframeInterval ?? 1, smoothed, model: model.name, device: info.device, threads: info.threads, parallelRuns: threadLayout(job).inferenceThreads, output: p.output, ignoredFiles: p.ignored ?? [] };
  } finally {
    segmenter.close();
  }
}
