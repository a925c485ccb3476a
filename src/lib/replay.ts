// Replay: reprocess a fixed range of a frame topic into a folder. Same pipeline and native core as
// process; the outputs are deterministic, so replaying a range twice gives byte-identical files.
import { BgrmError } from './errors';
import { runPipeline, type PipelineSummary } from './pipeline';
import { extensionOf } from './output-format';
import { renderOptions, type RenderJob } from './render';
import { openSegmenter, type SegmenterConfig } from './segmenter';
import { FileSink } from './sinks/files';
import { KafkaRangeSource, type RangeOptions } from './sources/kafka-range';

export interface ReplayJob extends SegmenterConfig, RangeOptions, RenderJob {
  output?: string;
}

export interface ReplaySummary extends PipelineSummary {
  topic: string;
  ranges: { partition: number; start: number; end: number }[];
  skippedOtherCameras: number;
  output: string;
  model: string;
}

export async function runReplay(job: ReplayJob): Promise<ReplaySummary> {
  if (!job.output) throw new BgrmError('ERR_USAGE', 'replay needs -o DIR: frames are written to DIR/<camera-id>/<frame-number>.png');
  if (job.fromOffset === undefined && job.fromTimeMs === undefined) throw new BgrmError('ERR_USAGE', 'give --from-offset N or --from-time ISO8601');
  const processOptions = await renderOptions(job);
  const source = new KafkaRangeSource(job);
  const { segmenter, model } = await openSegmenter(job);
  try {
    await source.open();
    const summary = await runPipeline({
      source,
      sink: new FileSink({ folder: job.output, extension: extensionOf(job.outputFormat ?? 'png') }),
      segmenter,
      processOptions,
      concurrency: job.concurrency,
      onProgress: job.onProgress,
      signal: job.signal,
      temporal: job.temporal ?? true, // each camera's frames in the range are one stream, from the range's start
      keyframeInterval: job.keyframeInterval,
      flow: job.flow,
    });
    return { ...summary, topic: job.topic, ranges: source.ranges, skippedOtherCameras: source.skipped, output: job.output, model: model.name };
  } finally {
    await source.close();
    segmenter.close();
  }
}
