// npm run bench: model-only ONNX Runtime vs bgrm end to end (JPEG in -> RGBA PNG out) on the same
// 854x480 DAVIS frames and thread count, PNG settings, rembg where it can run, and DAVIS quality.
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { resolveModel } from '../lib/models';
import { native, projectRoot, type FlowPreset, type StageTimings } from '../lib/native';
import { FAST_SETTINGS, type KeyframeInterval } from '../lib/render';
import { scoreVideo, type VideoScore } from '../lib/quality';
import { openSegmenter } from '../lib/segmenter';
import { modelOnly } from './model-only';

interface Args {
  frames: number;
  threads: number;
  concurrency: number;
  testdata: string;
  rembg: boolean;
  quality: boolean;
  json: boolean;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string, fallback: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] ? argv[i + 1] : fallback;
  };
  return {
    frames: Number(get('frames', '40')),
    threads: Number(get('threads', String(os.availableParallelism()))),
    concurrency: Number(get('concurrency', '4')),
    testdata: path.resolve(get('testdata', path.join(projectRoot, '..', 'shared', 'testdata'))),
    rembg: !argv.includes('--no-rembg'),
    quality: !argv.includes('--no-quality'),
    json: argv.includes('--json'),
  };
}

async function loadFrames(testdata: string, n: number): Promise<string[]> {
  const dirs = ['dance-twirl', 'breakdance', 'dog', 'blackswan'].map((d) => path.join(testdata, 'davis', d));
  const files: string[] = [];
  for (let i = 0; files.length < n; i++) {
    const d = dirs[i % dirs.length];
    const names = (await fs.readdir(d)).filter((f) => f.endsWith('.jpg')).sort();
    files.push(path.join(d, names[Math.floor(i / dirs.length) % names.length]));
  }
  return files;
}

interface EngineConfig {
  label: string;
  threads: number;
  inferenceThreads: number;
  spinning: boolean;
  concurrency: number;
}

async function endToEnd(files: Buffer[], cfg: EngineConfig): Promise<{ fps: number; stages: StageTimings }> {
  const { segmenter } = await openSegmenter({
    model: 'u2netp',
    threads: cfg.threads,
    inferenceThreads: cfg.inferenceThreads,
    spinning: cfg.spinning,
  });
  await segmenter.process(files[0], { pngLevel: 1 });
  const totals: Record<string, number> = {};
  const inFlight = new Set<Promise<void>>();
  const t0 = performance.now();
  for (const f of files) {
    const p = segmenter.process(f, { output: 'rgba', encoding: 'png', pngLevel: 1 }).then((r) => {
      for (const [k, v] of Object.entries(r.timings)) totals[k] = (totals[k] ?? 0) + v;
    });
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    if (inFlight.size >= cfg.concurrency) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const fps = files.length / ((performance.now() - t0) / 1000);
  segmenter.close();
  const stages = Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, v / files.length])) as unknown as StageTimings;
  return { fps, stages };
}

async function pngSettings(sample: Buffer): Promise<{ level: number; filter: string; ms: number; bytes: number }[]> {
  const { segmenter } = await openSegmenter({ model: 'u2netp', threads: 1 });
  const raw = await segmenter.process(sample, { encoding: 'raw' });
  segmenter.close();
  const rows = [];
  for (const level of [0, 1, 3, 6, 12]) {
    for (const filter of ['none', 'sub', 'up', 'paeth', 'all']) {
      if (level === 0 && filter !== 'none') continue;
      await native().encodePng(raw.data, raw.width, raw.height, 4, level, filter);
      const t0 = performance.now();
      let png: Buffer = Buffer.alloc(0);
      for (let i = 0; i < 5; i++) png = await native().encodePng(raw.data, raw.width, raw.height, 4, level, filter);
      rows.push({ level, filter, ms: (performance.now() - t0) / 5, bytes: png.length });
    }
  }
  return rows;
}

async function rembgFps(files: string[], threads: number, modelPath: string): Promise<number | string> {
  const python = process.env.BGRM_REMBG_PYTHON ?? path.join(projectRoot, '.cache', 'rembg-venv', 'bin', 'python');
  if (!existsSync(python)) return 'not run: no rembg environment (scripts/bench-rembg-setup.sh creates it)';
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-u2net-home-'));
  await fs.symlink(modelPath, path.join(home, 'u2netp.onnx'));
  try {
    const { stdout } = await promisify(execFile)(python, [path.join(projectRoot, 'scripts', 'rembg_bench.py'), String(threads), ...files], {
      env: { ...process.env, U2NET_HOME: home, OMP_NUM_THREADS: String(threads) },
      maxBuffer: 2 ** 20,
      timeout: 30 * 60 * 1000,
    });
    return (JSON.parse(stdout.trim().split('\n').pop()!) as { framesPerSecond: number }).framesPerSecond;
  } catch (err) {
    return `not run: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    await fs.rm(home, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!existsSync(path.join(args.testdata, 'davis'))) {
    throw new Error(`benchmark frames not found: ${args.testdata}/davis (pass --testdata DIR)`);
  }
  const model = await resolveModel('u2netp');
  const fileNames = await loadFrames(args.testdata, args.frames);
  const files = await Promise.all(fileNames.map((f) => fs.readFile(f)));
  const log = (s: string) => !args.json && console.log(s);
  log(`bgrm benchmark: ${files.length} frames (854x480 JPEG), u2netp, ${args.threads} ONNX Runtime threads, ${os.availableParallelism()} cores`);

  const modelFps = await modelOnly(model.path, args.threads, files.length);
  log(`model only (onnxruntime-node, fixed tensor):   ${modelFps.toFixed(2)} frames/s`);
  const configs: EngineConfig[] = [
    { label: `default: ${args.threads} runs x 1 thread`, threads: 1, inferenceThreads: args.threads, spinning: false, concurrency: args.concurrency },
    { label: `1 run x ${args.threads} threads`, threads: args.threads, inferenceThreads: 1, spinning: false, concurrency: 3 },
    { label: '  same, spinning', threads: args.threads, inferenceThreads: 1, spinning: true, concurrency: 2 },
  ];
  const runs: { config: EngineConfig; fps: number; ratio: number }[] = [];
  let e2e = { fps: 0, stages: {} as StageTimings };
  for (const config of configs) {
    const r = await endToEnd(files, config);
    if (config.label.startsWith('default')) e2e = r;
    runs.push({ config, fps: r.fps, ratio: r.fps / modelFps });
    log(
      `bgrm end to end (JPEG -> RGBA PNG), ${config.label.padEnd(24)} ${r.fps.toFixed(2)} frames/s, ratio to model-only ${(r.fps / modelFps).toFixed(3)}` +
        (config.label.startsWith('default') ? '  (target >= 0.85)' : ''),
    );
  }
  log(
    `per-frame stage ms: decode ${e2e.stages.decodeMs.toFixed(1)}, resize+normalise ${e2e.stages.resizeMs.toFixed(1)}, ` +
      `wait for model ${e2e.stages.queueMs.toFixed(1)}, infer ${e2e.stages.inferMs.toFixed(1)}, matte ${e2e.stages.matteMs.toFixed(1)}, ` +
      `PNG ${e2e.stages.encodeMs.toFixed(1)}, total latency ${e2e.stages.totalMs.toFixed(1)}`,
  );

  const png = await pngSettings(files[0]);
  log('PNG encoding of one 854x480 RGBA cut-out (ms, bytes):');
  for (const r of png) log(`  level ${r.level} filter ${r.filter.padEnd(5)} ${r.ms.toFixed(1).padStart(6)} ms ${String(r.bytes).padStart(8)} bytes`);

  let rembg: number | string = 'skipped (--no-rembg)';
  if (args.rembg) {
    rembg = await rembgFps(fileNames, args.threads, model.path);
    if (typeof rembg === 'number') {
      log(`rembg end to end (remove(bytes) -> PNG):       ${rembg.toFixed(2)} frames/s`);
      log(`ratio bgrm / rembg:                             ${(e2e.fps / rembg).toFixed(2)}`);
    } else log(`rembg: ${rembg}`);
  }

  // Quality per mode: per-frame, temporal matting, and temporal with keyframes every 2 and 3 frames.
  const modes: { name: string; temporal: boolean; keyframeInterval: KeyframeInterval; int8?: boolean; flow?: FlowPreset; smooth?: boolean }[] = [
    { name: 'per-frame', temporal: false, keyframeInterval: 1 },
    { name: 'temporal', temporal: true, keyframeInterval: 1 },
    { name: 'temporal k=2', temporal: true, keyframeInterval: 2 },
    { name: 'temporal k=3', temporal: true, keyframeInterval: 3 },
  ];
  // with an int8 model made (bgrm models quantize u2netp): int8 per-frame, and --fast's settings
  const int8Model = await resolveModel('u2netp-int8').catch(() => undefined);
  if (int8Model) {
    modes.push({ name: 'int8', temporal: false, keyframeInterval: 1, int8: true }, { name: 'int8 auto (--fast)', temporal: true, int8: true, smooth: true, ...FAST_SETTINGS });
  } else log('(no u2netp-int8: make it with bgrm models quantize u2netp --calibration VIDEO to add int8 modes)');
  const quality: (VideoScore & { mode: string })[] = [];
  if (args.quality) {
    const { segmenter } = await openSegmenter({ model: 'u2netp', threads: args.threads });
    const int8 = int8Model ? (await openSegmenter({ model: 'u2netp-int8', threads: args.threads })).segmenter : undefined;
    const seqs = (await fs.readdir(path.join(args.testdata, 'davis'))).sort();
    log('DAVIS quality (every frame in order), u2netp: IoU / background flicker / frames per second (JPEG in, mask out)');
    log(`  ${'sequence'.padEnd(16)}${modes.map((m) => m.name.padStart(26)).join('')}`);
    for (const s of seqs) {
      const cells: string[] = [];
      for (const m of modes) {
        const score = await scoreVideo(m.int8 ? int8! : segmenter, path.join(args.testdata, 'davis', s), { temporal: m.temporal, keyframeInterval: m.keyframeInterval, flow: m.flow, smooth: m.smooth });
        quality.push({ ...score, mode: m.name });
        cells.push(`${score.iou.toFixed(3)} / ${score.flicker.toFixed(4)} / ${score.fps.toFixed(1)}`.padStart(26));
      }
      log(`  ${s.padEnd(16)}${cells.join('')}`);
    }
    segmenter.close();
    int8?.close();
    const of = (mode: string) => quality.filter((q) => q.mode === mode);
    const mean = (xs: VideoScore[], f: (q: VideoScore) => number) => xs.reduce((a, q) => a + f(q), 0) / xs.length;
    const base = of('per-frame');
    for (const m of modes) {
      const q = of(m.name);
      log(
        `  ${m.name.padEnd(14)} mean IoU ${mean(q, (x) => x.iou).toFixed(4)} (${(mean(q, (x) => x.iou) - mean(base, (x) => x.iou) >= 0 ? '+' : '')}${(mean(q, (x) => x.iou) - mean(base, (x) => x.iou)).toFixed(4)}), ` +
          `flicker ${mean(q, (x) => x.flicker).toFixed(4)} (x${(mean(q, (x) => x.flicker) / mean(base, (x) => x.flicker)).toFixed(3)}), ${mean(q, (x) => x.fps).toFixed(2)} frames/s`,
      );
    }
  }

  if (args.json) {
    console.log(
      JSON.stringify(
        { frames: files.length, threads: args.threads, modelOnlyFps: modelFps, endToEndFps: e2e.fps, ratio: e2e.fps / modelFps, configs: runs, stageMs: e2e.stages, png, rembgFps: rembg, quality },
        null,
        2,
      ),
    );
  }
}

main().catch((err) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exit(1);
});
