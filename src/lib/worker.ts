// The Kafka worker: frames from a topic (consumer group) to a folder, failures to a dead-letter
// topic. Offsets are committed only after a frame's file (or dead letter) is durable; a replayed
// frame rewrites its own file with identical bytes, so the folder holds every frame exactly once.
import * as os from 'node:os';
import { BgrmError } from './errors';
import type { KafkaConnection } from './kafka/client';
import { runPipeline, type PipelineSummary } from './pipeline';
import { renderOptions, type RenderJob } from './render';
import { openSegmenter, type SegmenterConfig } from './segmenter';
import { DeadLetterSink } from './sinks/dead-letter';
import { FileSink } from './sinks/files';
import { TransactionalTopicSink } from './sinks/kafka-topic';
import { KafkaFrameSource, type KafkaFrame } from './sources/kafka';

export interface WorkerJob extends SegmenterConfig, KafkaConnection, RenderJob {
  topic: string;
  group: string;
  output?: string;
  /** Exactly-once output topic (transactions) instead of a folder. */
  outputTopic?: string;
  outputPartitions?: number;
  maxMessageBytes?: number;
  dlqTopic?: string;
  workerId?: string;
  idleExitMs?: number;
  maxLagMs?: number;
  maxFrames?: number;
}

export interface WorkerSummary extends PipelineSummary {
  workerId: string;
  group: string;
  topic: string;
  deadLettered: number;
  deadLetterTopic: string;
  output: string;
  model: string;
  transactions?: { committed: number; aborted: number };
  /** Capture timestamp to output durable (file renamed / message produced), milliseconds. */
  latencyMs: { p50: number; p95: number; p99: number; max: number };
}

/** Keeps the last 10,000 end-to-end latencies (bounded) and reports percentiles. */
class LatencyWindow {
  private readonly values: number[] = [];
  add(ms: number): void {
    if (this.values.length >= 10000) this.values.shift();
    this.values.push(ms);
  }
  summary(): WorkerSummary['latencyMs'] {
    const v = [...this.values].sort((a, b) => a - b);
    const q = (p: number) => (v.length ? v[Math.min(v.length - 1, Math.floor(p * v.length))] : 0);
    return { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: v.length ? v[v.length - 1] : 0 };
  }
}

export function defaultWorkerId(): string {
  return `${os.hostname()}-${process.pid}`;
}

export async function runWorker(job: WorkerJob): Promise<WorkerSummary> {
  if (job.outputTopic) return runTransactionalWorker(job);
  if (!job.output) throw new BgrmError('ERR_USAGE', 'a worker needs -o DIR (files) or --output-topic TOPIC (exactly-once topic)');
  const workerId = job.workerId ?? defaultWorkerId();
  const dlqTopic = job.dlqTopic ?? `${job.topic}.dlq`;
  const processOptions = await renderOptions(job);
  const { segmenter, model } = await openSegmenter(job);
  const source = new KafkaFrameSource({ ...job, clientId: `bgrm-${workerId}`, staticMemberId: job.workerId });
  const dlq = new DeadLetterSink(job, dlqTopic);
  const latency = new LatencyWindow();
  try {
    await dlq.open();
    await source.connect();
    const summary = await runPipeline({
      source,
      sink: new FileSink({ folder: job.output }),
      segmenter,
      processOptions,
      concurrency: job.concurrency,
      onProgress: job.onProgress,
      signal: job.signal,
      afterFrame: async (frame, error) => {
        const f = frame as KafkaFrame;
        if (error) await dlq.send(f.message, error.code, error.message, workerId);
        else if (!f.skip) latency.add(Date.now() - f.timestampMs);
        source.markDone(f);
      },
    });
    return {
      ...summary,
      workerId,
      group: job.group,
      topic: job.topic,
      deadLettered: dlq.sent,
      deadLetterTopic: dlqTopic,
      output: job.output,
      model: model.name,
      latencyMs: latency.summary(),
    };
  } finally {
    await source.close();
    await dlq.close();
    segmenter.close();
  }
}

/** Worker with an output topic: outputs, dead letters and offsets in one transaction per batch. */
async function runTransactionalWorker(job: WorkerJob): Promise<WorkerSummary> {
  if (job.output) throw new BgrmError('ERR_USAGE', 'give either -o DIR or --output-topic, not both');
  const workerId = job.workerId ?? defaultWorkerId();
  const dlqTopic = job.dlqTopic ?? `${job.topic}.dlq`;
  const processOptions = await renderOptions(job);
  const { segmenter, model } = await openSegmenter(job);
  const source = new KafkaFrameSource({ ...job, clientId: `bgrm-${workerId}`, externalCommit: true, staticMemberId: job.workerId });
  const sink = new TransactionalTopicSink(
    {
      ...job,
      outputTopic: job.outputTopic!,
      dlqTopic,
      partitions: job.outputPartitions ?? 4,
      transactionalId: `bgrm-${job.group}-${workerId}`,
      workerId,
      model: model.name,
      content: `${job.format}/png`,
      maxMessageBytes: job.maxMessageBytes ?? 1_000_000,
    },
    source,
  );
  const latency = new LatencyWindow();
  try {
    await sink.open();
    await source.connect();
    const summary = await runPipeline({
      source,
      sink,
      segmenter,
      processOptions,
      concurrency: job.concurrency,
      onProgress: job.onProgress,
      signal: job.signal,
      afterFrame: async (frame, error) => {
        await sink.afterFrame(frame as KafkaFrame, error);
        // produced inside a transaction: visible to read_committed readers at the batch's commit
        if (!error && !frame.skip) latency.add(Date.now() - frame.timestampMs);
      },
    });
    return {
      ...summary,
      workerId,
      group: job.group,
      topic: job.topic,
      deadLettered: sink.deadLettered,
      deadLetterTopic: dlqTopic,
      output: job.outputTopic!,
      model: model.name,
      transactions: { committed: sink.committedTransactions, aborted: sink.abortedTransactions },
      latencyMs: latency.summary(),
    };
  } finally {
    await source.close();
    segmenter.close();
  }
}
