// The Kafka worker: frames from a topic (consumer group) to a folder, failures to a dead-letter
// topic. Offsets are committed only after a frame's file (or dead letter) is durable; a replayed
// frame rewrites its own file with identical bytes, so the folder holds every frame exactly once.
import * as os from 'node:os';
import { trace } from './debug';
import { BgrmError } from './errors';
import type { KafkaConnection } from './kafka/client';
import { DepthStats, runPipeline, type PipelineSummary } from './pipeline';
import { extensionOf } from './output-format';
import { renderOptions, type RenderJob } from './render';
import { openSegmenter, type SegmenterConfig } from './segmenter';
import { DeadLetterSink } from './sinks/dead-letter';
import type { FrameSink, FrameSource } from './frame';
import { FileSink } from './sinks/files';
import { KafkaFrameSource, type KafkaFrame } from './sources/kafka';
import { Metrics } from './metrics';
import { peakRssBytes } from './rss';
import { native } from './native';
import { startMetricsServer } from './serve/metrics-server';
import { ExactlyOnce } from './kafka/exactly-once';
import { DEFAULT_STATUS_TOPIC } from './kafka/messages';
import { StatusPublisher } from './status';

export interface WorkerJob extends SegmenterConfig, KafkaConnection, RenderJob {
  topic: string;
  group: string;
  output?: string;
  /** Exactly-once output topic (transactions) instead of a folder. */
  outputTopic?: string;
  outputPartitions?: number;
  maxMessageBytes?: number;
  dlqTopic?: string;
  /** The exactly-once output's transactional ids are PREFIX + group + "-" + worker id (default "bgrm-"). */
  transactionalIdPrefix?: string;
  workerId?: string;
  idleExitMs?: number;
  maxLagMs?: number;
  maxFrames?: number;
  /** Serve /metrics and /healthz on this port (0: any free port). */
  metricsPort?: number;
  metricsHost?: string;
  /** Where status records go (default bgrm.status); false: publish none. */
  statusTopic?: string | false;
  statusIntervalMs?: number;
  /** Told the metrics server's address once it listens. */
  onMetricsUrl?: (url: string) => void;
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
  /** Capture timestamp to output durable (file renamed) or visible (its transaction committed), milliseconds. */
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

/** A worker's two halves: where frames come from (the group) and where results go, with how a frame settles. */
interface WorkerOutput {
  source: FrameSource;
  sink: FrameSink;
  /** Creates topics, connects producers and joins the group. */
  open(): Promise<void>;
  /** In source order, after a frame was written or failed: dead letter, then mark it done. */
  settle(frame: KafkaFrame, error?: { code: string; message: string }): Promise<void>;
  /** Leaves the group and disconnects what the pipeline did not close (after a failure). */
  close(): Promise<void>;
  lag(): Promise<Record<string, number>>;
  assignedPartitions(): number[];
  deadLettered(): number;
  details(): Pick<WorkerSummary, 'output'> & Partial<Pick<WorkerSummary, 'transactions'>>;
  /** A transactional output's commit interval in use now (ms); a folder has none. */
  commitIntervalMs?(): number;
}

/** Where a frame's end-to-end latency is taken: when it is durable (a file) or visible (a committed transaction). */
type LatencyRecorder = (timestampMs: number) => void;

/** At least once: files (rewritten with the same bytes if read again), offsets committed by the source once durable. */
function folderOutput(job: WorkerJob, folder: string, dlqTopic: string, workerId: string, recordLatency: LatencyRecorder): WorkerOutput {
  const source = new KafkaFrameSource({ ...job, clientId: `bgrm-${workerId}`, staticMemberId: job.workerId });
  const dlq = new DeadLetterSink(job, dlqTopic);
  return {
    source,
    sink: new FileSink({ folder, extension: extensionOf(job.outputFormat ?? 'png') }),
    open: async () => {
      await dlq.open();
      await source.connect();
    },
    settle: async (frame, error) => {
      if (error) await dlq.send(frame.message, error.code, error.message, workerId);
      else if (!frame.skip) recordLatency(frame.timestampMs); // the file is durable now
      source.markDone(frame);
    },
    close: async () => {
      await source.close();
      await dlq.close();
    },
    lag: () => source.lag(),
    assignedPartitions: () => source.assignedPartitions(),
    deadLettered: () => dlq.sent,
    details: () => ({ output: folder }),
  };
}

/** Exactly once: outputs, dead letters and offsets in one transaction per batch (kafka/exactly-once.ts). */
function topicOutput(job: WorkerJob, topic: string, dlqTopic: string, workerId: string, model: string, recordLatency: LatencyRecorder): WorkerOutput {
  const unit = new ExactlyOnce({
    ...job,
    clientId: `bgrm-${workerId}`,
    staticMemberId: job.workerId,
    outputTopic: topic,
    dlqTopic,
    partitions: job.outputPartitions ?? 4,
    transactionalId: `${job.transactionalIdPrefix ?? 'bgrm-'}${job.group}-${workerId}`,
    workerId,
    model,
    content: `${job.format}/${job.outputFormat ?? 'png'}`,
    maxMessageBytes: job.maxMessageBytes ?? 1_000_000,
    onCommitted: (timestamps) => timestamps.forEach(recordLatency), // visible to readers now
  });
  return {
    source: unit.source,
    sink: unit.sink, // the pipeline closes it: the last transaction commits there
    open: () => unit.open(),
    settle: (frame, error) => unit.settle(frame, error),
    close: async () => {
      await unit.sink.abort?.(); // only if the pipeline did not close it: nothing is left open otherwise
      await unit.source.close?.();
    },
    lag: () => unit.lag(),
    assignedPartitions: () => unit.assignedPartitions(),
    deadLettered: () => unit.deadLettered,
    details: () => ({ output: topic, transactions: { committed: unit.committedTransactions, aborted: unit.abortedTransactions } }),
    commitIntervalMs: () => unit.commitIntervalMs,
  };
}

/**
 * Runs a worker until stopped (or idle): frames from the group's partitions, to a folder (offsets
 * committed after files are durable) or to an output topic (outputs and offsets in transactions).
 */
export async function runWorker(job: WorkerJob): Promise<WorkerSummary> {
  if (job.output && job.outputTopic) throw new BgrmError('ERR_USAGE', 'give either -o DIR or --output-topic, not both');
  if (!job.output && !job.outputTopic) throw new BgrmError('ERR_USAGE', 'a worker needs -o DIR (files) or --output-topic TOPIC (exactly-once topic)');
  const workerId = job.workerId ?? defaultWorkerId();
  const dlqTopic = job.dlqTopic ?? `${job.topic}.dlq`;
  const processOptions = await renderOptions(job);
  const { segmenter, model } = await openSegmenter(job);
  const latency = new LatencyWindow();
  const metrics = new Metrics({ worker: workerId });
  const recordLatency: LatencyRecorder = (timestampMs) => {
    const ms = Date.now() - timestampMs;
    latency.add(ms);
    metrics.endToEnd.observe({ source: 'kafka' }, Math.max(0, ms) / 1000);
  };
  const output = job.outputTopic
    ? topicOutput(job, job.outputTopic, dlqTopic, workerId, model.name, recordLatency)
    : folderOutput(job, job.output!, dlqTopic, workerId, recordLatency);
  const depth = new DepthStats();
  let inFlight = 0;
  metrics.modelInfo.set({ model: model.name, onnxruntime: native().versions().onnxruntime, device: job.device ?? 'cpu' }, 1);
  const counts = { processed: 0, failed: 0, skipped: 0 };
  let lastError: { code: string; message: string; at: number } | undefined;
  const startedAt = Date.now();
  const status =
    job.statusTopic === false
      ? undefined
      : new StatusPublisher(job, job.statusTopic ?? DEFAULT_STATUS_TOPIC, async () => {
          const lag = await output.lag();
          const commitIntervalMs = output.commitIntervalMs?.();
          if (commitIntervalMs !== undefined) metrics.commitInterval.set(commitIntervalMs / 1000);
          metrics.lag.reset();
          for (const [partition, n] of Object.entries(lag)) metrics.lag.set({ worker: workerId, topic: job.topic, partition }, n);
          return {
            workerId,
            group: job.group,
            topic: job.topic,
            output: job.outputTopic ?? job.output!,
            model: model.name,
            startedAt,
            partitions: output.assignedPartitions(),
            ...counts,
            deadLettered: output.deadLettered(),
            latencyMs: latency.summary(),
            inFlight,
            depth: depth.summary(),
            peakRssBytes: peakRssBytes(),
            ...(commitIntervalMs !== undefined ? { commitIntervalMs } : {}),
            lag,
            lastError,
          };
        }, job.statusIntervalMs);
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  try {
    if (job.metricsPort !== undefined) {
      metricsServer = await startMetricsServer(metrics, job.metricsPort, job.metricsHost);
      job.onMetricsUrl?.(metricsServer.url);
    }
    await output.open();
    await status?.start();
    let deadLetteredSeen = 0;
    const summary = await runPipeline({
      source: output.source,
      sink: output.sink,
      segmenter,
      processOptions,
      concurrency: job.concurrency,
      onProgress: (p) => {
        inFlight = p.inFlight;
        metrics.inFlight.set({ source: 'kafka' }, p.inFlight);
        job.onProgress?.(p);
      },
      depth,
      signal: job.signal,
      temporal: job.temporal ?? true, // one camera = one stream, processed in order by one worker
      keyframeInterval: job.keyframeInterval,
      flow: job.flow,
      afterFrame: async (frame, error) => {
        await output.settle(frame as KafkaFrame, error);
        if (frame.skip) {
          counts.skipped++;
          metrics.skipped.inc({ source: 'kafka' });
        }
        const dead = output.deadLettered();
        if (dead > deadLetteredSeen) metrics.deadLettered.inc({ topic: dlqTopic }, dead - deadLetteredSeen);
        deadLetteredSeen = dead;
      },
      observer: {
        written: (frame, result) => {
          counts.processed++;
          metrics.observe('kafka', result.timings); // end to end: when durable or visible (recordLatency)
        },
        failed: (frame, code) => {
          counts.failed++;
          metrics.fail('kafka', code);
          lastError = { code, message: `${frame.origin}: ${code}`, at: Date.now() };
        },
      },
    });
    return {
      ...summary,
      ...output.details(),
      workerId,
      group: job.group,
      topic: job.topic,
      deadLettered: output.deadLettered(),
      deadLetterTopic: dlqTopic,
      model: model.name,
      latencyMs: latency.summary(),
    };
  } finally {
    trace('stop', () => 'the pipeline ended: closing the worker');
    await status?.stop().catch(() => undefined);
    await output.close();
    trace('stop', () => 'worker closed');
    await metricsServer?.close();
    segmenter.close();
  }
}
