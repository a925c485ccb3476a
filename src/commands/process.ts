// bgrm process: remove the background from images, folders, videos or standard input.
import { Args, Command, Flags } from '@oclif/core';
import { BgrmError, errorCode, errorMessage } from '../lib/errors';
import { kafkaClient, kafkaClientFlags } from '../lib/kafka/flags';
import { DEFAULT_MODEL } from '../lib/models';
import { OUTPUT_FORMATS, chooseOutputFormat } from '../lib/output-format';
import { FLOW_PRESETS, PRESETS, presetOf, temporalSettings } from '../lib/render';
import { ProgressLine } from '../lib/progress';
import { stopOnSignals } from '../lib/stop';

export default class Process extends Command {
  static description =
    'Remove the background from photos, folders of photos, videos or standard input, with U-2-Net in the native core';

  static strict = false;

  static args = {
    inputs: Args.string({ description: 'image files, folders, one video file, or - for standard input', required: false }),
  };

  static examples = [
    '<%= config.bin %> process photo.jpg -o photo.png',
    '<%= config.bin %> process photos/ -o cutouts/',
    '<%= config.bin %> process clip.mp4 -o clip.webm',
    '<%= config.bin %> process clip.mp4 -o frames/ --format mask',
    'cat a.jpg | <%= config.bin %> process - -o - > a.png',
    "<%= config.bin %> process portrait.jpg -o portrait.png --background '#00ff00'",
    '<%= config.bin %> process --brokers 127.0.0.1:9092 --topic frames --group cutters -o out/',
  ];

  static flags = {
    output: Flags.string({ char: 'o', description: 'output: an image file (.png, .webp, .jpg), a folder, a .webm/.mov video, or - for standard output' }),
    'output-format': Flags.string({
      description: "image format of each output: png, webp (alpha kept; lossless unless --output-quality) or jpeg (no alpha: needs --background or --format mask) [default: the -o file's extension, else png]",
      options: [...OUTPUT_FORMATS],
    }),
    'output-quality': Flags.integer({ description: 'lossy WebP at this quality (default: lossless WebP); JPEG quality (default 90)', min: 1, max: 100 }),
    model: Flags.string({ char: 'm', description: `model name (bgrm models list), NAME-int8 (bgrm models quantize) or path to an .onnx file [default: ${DEFAULT_MODEL}; ${PRESETS.fast.model}-int8 with --fast, ${PRESETS.best.model}-int8 with --best]` }),
    device: Flags.string({ description: 'where the model runs', options: ['cpu', 'cuda'], default: 'cpu' }),
    threads: Flags.integer({ description: 'run the model with this many ONNX Runtime threads (default: one single-threaded run per core, which measured faster)', min: 1, max: 256 }),
    'cpu-threads': Flags.integer({ description: 'threads for decode, resize and PNG encode', min: 1, max: 64, default: 1 }),
    format: Flags.string({ description: 'rgba: cut-out with alpha; mask: the 8-bit mask alone (default: rgba; mask with --output-topic)', options: ['rgba', 'mask'] }),
    background: Flags.string({ description: "composite onto a colour ('#00ff00', white) or an image file instead of transparency" }),
    temporal: Flags.boolean({ description: 'temporal matting: carry the matte along optical flow between frames of a video or camera (default: on for videos and Kafka streams, off for photos)', allowNo: true }),
    'keyframe-interval': Flags.string({
      description:
        'with temporal matting, run the model on every K-th frame only and let optical flow carry the matte between; auto: whenever the carried edge has become unreliable, at least every 4th frame (default 1; auto with --fast)',
    }),
    fast: Flags.boolean({
      description:
        'u2netp-int8 (made once, calibrated on a local input of 16+ frames, when missing), and for videos and cameras adaptive keyframes: the model runs when the matte carried along the optical flow has become unreliable (--keyframe-interval auto)',
      default: false,
      exclusive: ['best'],
    }),
    best: Flags.boolean({
      description:
        "the full U-2-Net's quality at the small float model's speed: u2net-int8 (made like --fast's model; needs bgrm models pull u2net), with temporal matting for videos and cameras",
      default: false,
      exclusive: ['fast'],
    }),
    flow: Flags.string({
      description: "optical-flow preset for temporal matting (default: patch, DIS's medium without variational refinement: a third of its time, IoU as good)",
      options: [...FLOW_PRESETS],
    }),
    concurrency: Flags.integer({ description: 'frames in flight at once (overlaps decode/encode with inference; default 4, more with keyframes: 10 with --fast)', min: 1, max: 64 }),
    'png-level': Flags.integer({ description: 'PNG compression level (0 stores, 1 fastest, 12 smallest)', min: 0, max: 12, default: 1 }),
    'max-pixels': Flags.integer({ description: 'refuse images larger than this many pixels', min: 1, default: 64 * 1024 * 1024 }),
    'max-frames': Flags.integer({ description: 'stop a video after this many frames', min: 1 }),
    brokers: Flags.string({ description: 'Kafka worker mode: bootstrap servers host:port[,...]', aliases: ['kafka-brokers'], helpGroup: 'KAFKA' }),
    topic: Flags.string({ description: 'Kafka worker mode: the frame topic to consume', helpGroup: 'KAFKA' }),
    group: Flags.string({ description: 'consumer group shared by the workers', default: 'bgrm', helpGroup: 'KAFKA' }),
    'output-topic': Flags.string({
      description:
        'exactly-once output topic (transactions; value: mask PNG unless --format rgba). Readers see a frame when its transaction commits: every 100 ms while the worker keeps up, every 16 frames or 1 s while it is behind',
      helpGroup: 'KAFKA',
    }),
    'output-partitions': Flags.integer({ description: 'partitions when the output topic is created', min: 1, default: 4, helpGroup: 'KAFKA' }),
    'max-message-bytes': Flags.integer({ description: 'largest output message; larger outputs are dead-lettered', min: 1024, default: 1000000, helpGroup: 'KAFKA' }),
    'dlq-topic': Flags.string({ description: 'dead-letter topic for frames that cannot be processed (default: TOPIC.dlq)', helpGroup: 'KAFKA' }),
    'transactional-id-prefix': Flags.string({
      description: 'with --output-topic: transactional ids are PREFIX + group + "-" + worker id (a prefix your ACLs grant)',
      default: 'bgrm-',
      helpGroup: 'KAFKA',
    }),
    'worker-id': Flags.string({ description: 'this worker in reports (default: host-pid)', helpGroup: 'KAFKA' }),
    'idle-exit': Flags.integer({ description: 'stop after this many seconds without messages (default: run until stopped)', min: 1, helpGroup: 'KAFKA' }),
    'max-lag-ms': Flags.integer({ description: 'live mode: skip (count, commit) frames older than this at arrival', min: 1, helpGroup: 'KAFKA' }),
    'metrics-port': Flags.integer({ description: 'serve /metrics (Prometheus) and /healthz on this port while working (0: any free port)', min: 0, max: 65535, helpGroup: 'KAFKA' }),
    'metrics-host': Flags.string({ description: 'address for --metrics-port', default: '127.0.0.1', helpGroup: 'KAFKA' }),
    'status-topic': Flags.string({ description: 'topic for this worker\'s status records, read by bgrm serve', default: 'bgrm.status', helpGroup: 'KAFKA' }),
    status: Flags.boolean({ description: 'publish status records every 2 s (--no-status: none)', default: true, allowNo: true, helpGroup: 'KAFKA' }),
    'connect-timeout': Flags.integer({ description: 'seconds to wait for the broker', min: 1, default: 10, helpGroup: 'KAFKA' }),
    ...kafkaClientFlags,
    json: Flags.boolean({ description: 'print a machine-readable summary (to stderr when -o -)', default: false }),
    quiet: Flags.boolean({ char: 'q', description: 'no progress line', default: false }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Process);
    const preset = presetOf(flags);
    const inputs = argv as string[];
    const toStdout = flags.output === '-' || (inputs[0] === '-' && !flags.output);
    const progress = new ProgressLine(process.stderr, !!process.stderr.isTTY && !flags.quiet && !flags.json);
    // First Ctrl-C: stop starting frames, finish and write those in flight, print the summary.
    const signal = stopOnSignals('stopping: finishing frames in flight (press Ctrl-C again to quit now)');
    let summary;
    try {
      const model = flags.model ?? (preset ? await (await import('../lib/quantize')).presetModel(`--${preset}` as const, PRESETS[preset].model, inputs, (m) => process.stderr.write(`${m}\n`)) : DEFAULT_MODEL);
      const format = (flags.format ?? (flags['output-topic'] ? 'mask' : 'rgba')) as 'rgba' | 'mask';
      const common = {
        output: flags.output,
        model,
        device: flags.device as 'cpu' | 'cuda',
        threads: flags.threads,
        cpuThreads: flags['cpu-threads'],
        format,
        background: flags.background,
        ...chooseOutputFormat({ flag: flags['output-format'], quality: flags['output-quality'], output: flags.output, format, background: flags.background }),
        temporal: flags.temporal, // --fast changes only streams (videos, cameras); photos stay unrelated
        ...temporalSettings({ preset, keyframeInterval: flags['keyframe-interval'], flow: flags.flow, concurrency: flags.concurrency }),
        pngLevel: flags['png-level'],
        maxPixels: flags['max-pixels'],
        maxFrames: flags['max-frames'],
        onProgress: (p: Parameters<ProgressLine['update']>[0]) => progress.update(p),
        signal,
      };
      if (flags.topic || flags.brokers) {
        if (!flags.topic || inputs.length > 0) throw new BgrmError('ERR_USAGE', 'Kafka worker mode takes --topic (and --brokers), and no input files');
        // Kafka (node-rdkafka) and metrics (prom-client) are loaded only by a worker: a local run stays smaller
        const { runWorker } = await import('../lib/worker');
        summary = await runWorker({
          ...common,
          ...kafkaClient(flags, '127.0.0.1:9092'),
          connectTimeoutMs: flags['connect-timeout'] * 1000,
          topic: flags.topic,
          group: flags.group,
          dlqTopic: flags['dlq-topic'],
          workerId: flags['worker-id'],
          transactionalIdPrefix: flags['transactional-id-prefix'],
          idleExitMs: flags['idle-exit'] ? flags['idle-exit'] * 1000 : undefined,
          maxLagMs: flags['max-lag-ms'],
          outputTopic: flags['output-topic'],
          outputPartitions: flags['output-partitions'],
          maxMessageBytes: flags['max-message-bytes'],
          metricsPort: flags['metrics-port'],
          metricsHost: flags['metrics-host'],
          statusTopic: flags.status ? flags['status-topic'] : false,
          onMetricsUrl: (url) => process.stderr.write(`metrics: ${url}/metrics\n`),
        });
      } else {
        const { runLocal } = await import('../lib/local');
        summary = await runLocal({ ...common, inputs });
      }
    } catch (err) {
      progress.done();
      const code = errorCode(err);
      if (flags.json) process.stderr.write(JSON.stringify({ error: { code, message: errorMessage(err) } }) + '\n');
      this.error(`${errorMessage(err)} [${code}]`, { exit: code === 'ERR_USAGE' ? 2 : 1 });
    }
    progress.done();
    const out = toStdout ? process.stderr : process.stdout;
    if (flags.json) {
      out.write(JSON.stringify(summary, null, 2) + '\n');
    } else if (!toStdout || summary.failed > 0) {
      process.stderr.write(
        (summary.skipped ? `${summary.skipped} stale frames skipped; ` : '') +
        `${summary.succeeded}/${summary.frames} frames in ${summary.seconds.toFixed(2)} s (${summary.framesPerSecond.toFixed(2)} frames/s) -> ${summary.output}\n`,
      );
    }
    for (const f of summary.failures) process.stderr.write(`failed: ${f.origin}: ${f.message} [${f.code}]\n`);
    const ignored = 'ignoredFiles' in summary ? summary.ignoredFiles : [];
    for (const f of ignored.slice(0, 20)) process.stderr.write(`not taken: ${f.file}: ${f.reason} [${f.code}]\n`);
    if (ignored.length > 20) process.stderr.write(`... and ${ignored.length - 20} more files not taken (all in --json)\n`);
    if (summary.failures.length < summary.failed) process.stderr.write(`... and ${summary.failed - summary.failures.length} more\n`);
    if (summary.interrupted) this.exit(130);
    // A worker keeps every failed frame in its dead-letter topic; local runs fail when any input failed.
    const kept = 'deadLettered' in summary ? summary.deadLettered : 0;
    if (summary.failed > kept) this.exit(1);
    // a consumer whose close was given up still holds a librdkafka thread, which would keep the process alive
    if (flags.topic && (await import('../lib/kafka/group-reader')).abandonedConsumers() > 0) this.exit(0);
  }
}
