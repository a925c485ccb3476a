// npm run bench:models: the models and named settings side by side, in one run. Every sequence of
// davis/ and davis-fast/ becomes an 854x480 H.264 file; `bgrm process FILE -o DIR --format mask`
// runs it per frame (no temporal matting) with u2netp, u2netp-int8, u2net and u2net-int8, and as a
// video with --fast and --best. Printed: model-only frames/s (2 threads), end-to-end frames/s (start-up
// excluded), model runs per frame, the largest peak RSS of any one process, and IoU against the
// ground truth per sequence, per set and overall, with the worst sequence of each mode beside the
// mean, and the checks of --best (mean IoU against u2net per frame, every sequence against u2netp
// per frame, end-to-end frames/s against u2netp per frame).
//   --step N (default 1): per-frame modes run on every N-th frame of the same video (cut losslessly,
//   so every mode sees the same pixels), and every mode is scored on those frames (video modes still
//   process every frame);  --sequences a,b;  --testdata DIR;  --json
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { leanModel } from '../lib/model-lean';
import { resolveModel } from '../lib/models';
import { projectRoot } from '../lib/native';
import { installQuantized } from '../lib/quantize';
import { arg, benchModels, davisVideos, runProcess, scoreMasks, type Score, type Summary } from './common';
import { modelOnly } from './model-only';

interface Mode {
  name: string;
  args: string[];
  /** Per frame: runs on the every-step-th-frame video; else the whole video (temporal matting). */
  perFrame: boolean;
  /** The model whose model-only frames/s is printed beside it. */
  model?: string;
}

const MODES: Mode[] = [
  { name: 'u2netp', args: ['-m', 'u2netp', '--no-temporal'], perFrame: true, model: 'u2netp' },
  { name: 'u2netp-int8', args: ['-m', 'u2netp-int8', '--no-temporal'], perFrame: true, model: 'u2netp-int8' },
  { name: 'u2net', args: ['-m', 'u2net', '--no-temporal'], perFrame: true, model: 'u2net' },
  { name: 'u2net-int8', args: ['-m', 'u2net-int8', '--no-temporal'], perFrame: true, model: 'u2net-int8' },
  { name: '--fast', args: ['--fast'], perFrame: false },
  { name: '--best', args: ['--best'], perFrame: false },
];

interface SetScore {
  iou: number;
  worst: { sequence: string; iou: number };
  worstVsU2net: { sequence: string; delta: number };
}

interface ModeSummary {
  mode: string;
  modelOnlyFps?: number;
  fps: number;
  modelRunsPerFrame: number;
  peakRssMiB: number;
  /** davis, davis-fast and all. */
  sets: Record<string, SetScore>;
}

interface Row {
  set: string;
  name: string;
  scores: (Score & { peakRssBytes: number })[];
}

const f3 = (x: number) => x.toFixed(3);
const signed = (x: number, digits = 3) => `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;

async function main(): Promise<void> {
  const testdata = path.resolve(arg('testdata', path.join(projectRoot, '..', 'shared', 'testdata')));
  const step = Number(arg('step', '1'));
  if (!Number.isInteger(step) || step < 1) throw new Error(`--step must be a whole number >= 1, not ${arg('step', '')}`);
  const json = process.argv.includes('--json');
  const u2net = await resolveModel('u2net').catch(() => undefined);
  if (!u2net) throw new Error('u2net is not installed: bgrm models pull u2net (176 MB) first');
  const only = arg('sequences', '');
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-bench-models-'));
  try {
    const sequences = await davisVideos(testdata, tmp, only, step);
    const sets = [...new Set(sequences.map((s) => s.set))];
    // Both int8 models calibrated on one davis video (as a user's first --fast / --best run would),
    // in a models folder of the benchmark's own, outside the timed runs.
    const calibration = sequences.find((s) => s.name === 'dance-twirl')?.video ?? sequences[0].video;
    const small = await benchModels(tmp, calibration);
    const models = process.env.BGRM_MODELS_DIR!;
    await fs.symlink(u2net.path, path.join(models, 'u2net.onnx'));
    await leanModel(path.join(models, 'u2net.onnx'));
    const big = await installQuantized('u2net', { calibration });
    log(`bench:models: u2netp-int8: ${small.int8Note}; u2net-int8 made in ${big.seconds.toFixed(0)} s, ${big.fusion?.qlinearConv ?? '?'} QLinearConv`);
    const paths: Record<string, string> = { u2netp: small.float, 'u2netp-int8': small.int8, u2net: u2net.path, 'u2net-int8': big.path };
    const modelOnlyFps: Record<string, number> = {};
    for (const [name, runs] of [['u2netp', 16], ['u2netp-int8', 16], ['u2net', 6], ['u2net-int8', 6]] as const) modelOnlyFps[name] = await modelOnly(paths[name], 2, runs);
    log(`  model only (2 threads): ${Object.entries(modelOnlyFps).map(([m, f]) => `${m} ${f.toFixed(2)}`).join(', ')} frames/s`);

    const rows: Row[] = [];
    for (const s of sequences) {
      const scores: Row['scores'] = [];
      for (const m of MODES) {
        const out = path.join(tmp, 'out');
        const summary = await runProcess<Summary>([m.perFrame ? s.sampled : s.video, '-o', out, '--format', 'mask', '--quiet', ...m.args]);
        scores.push({ ...(await scoreMasks(out, s.dir, summary, step, m.perFrame ? step : 1)), peakRssBytes: summary.peakRssBytes });
        await fs.rm(out, { recursive: true, force: true });
      }
      rows.push({ set: s.set, name: s.name, scores });
      log(`  ${s.name.padEnd(18)} ${scores.map((x, i) => `${MODES[i].name} ${f3(x.iou)}`).join('  ')}`);
    }

    const mean = (r: Row[], f: (x: Row) => number) => r.reduce((n, x) => n + f(x), 0) / r.length;
    const total = (i: number, f: (x: Score) => number) => rows.reduce((n, x) => n + f(x.scores[i]), 0);
    const ix = (name: string) => MODES.findIndex((m) => m.name === name);
    const [pIx, nIx, bestIx] = [ix('u2netp'), ix('u2net'), ix('--best')];
    const fps = (i: number) => total(i, (x) => x.frames) / total(i, (x) => x.seconds);
    const summary: ModeSummary[] = MODES.map((m, i) => ({
      mode: m.name,
      modelOnlyFps: m.model ? modelOnlyFps[m.model] : undefined,
      fps: fps(i),
      modelRunsPerFrame: total(i, (x) => x.modelRuns) / total(i, (x) => x.frames),
      peakRssMiB: Math.max(...rows.map((x) => x.scores[i].peakRssBytes)) / 2 ** 20,
      sets: Object.fromEntries(
        [...sets, 'all'].map((set) => {
          const r = rows.filter((x) => set === 'all' || x.set === set);
          const worst = r.reduce((w, x) => (x.scores[i].iou < w.scores[i].iou ? x : w));
          const worstVsU2net = r.reduce((w, x) => (x.scores[i].iou - x.scores[nIx].iou < w.scores[i].iou - w.scores[nIx].iou ? x : w));
          const setScore: SetScore = {
            iou: mean(r, (x) => x.scores[i].iou),
            worst: { sequence: worst.name, iou: worst.scores[i].iou },
            worstVsU2net: { sequence: worstVsU2net.name, delta: worstVsU2net.scores[i].iou - worstVsU2net.scores[nIx].iou },
          };
          return [set, setScore];
        }),
      ),
    }));
    const belowSmall = rows.filter((x) => x.scores[bestIx].iou < x.scores[pIx].iou);
    const checks = {
      bestMeanVsU2net: summary[bestIx].sets.all.iou - summary[nIx].sets.all.iou,
      bestBelowU2netp: belowSmall.map((x) => ({ sequence: x.name, delta: x.scores[bestIx].iou - x.scores[pIx].iou })),
      bestFpsVsU2netp: summary[bestIx].fps / summary[pIx].fps,
      u2netInt8MeanVsU2net: summary[ix('u2net-int8')].sets.all.iou - summary[nIx].sets.all.iou,
      u2netInt8ModelOnlyVsU2net: modelOnlyFps['u2net-int8'] / modelOnlyFps.u2net,
    };
    if (json) {
      process.stdout.write(`${JSON.stringify({ step, cores: os.availableParallelism(), sequences: rows.length, modes: summary, checks, rows }, null, 2)}\n`);
      return;
    }
    const frames = rows.reduce((n, x) => n + x.scores[bestIx].frames, 0);
    console.log(
      `bench:models: ${rows.length} sequences (${frames} frames) as 854x480 H.264, ${os.availableParallelism()} cores, default thread layout, ` +
        `IoU on every ${step === 1 ? '' : `${step}th `}frame, one run`,
    );
    console.log(`${'mode'.padEnd(12)} model-only  end-to-end fps (x u2netp)  runs/frame  peak MiB  ${sets.map((s) => `${s} IoU (worst)`.padEnd(34)).join('')}all IoU (vs u2net; worst vs u2net)`);
    for (const x of summary) {
      console.log(
        `${x.mode.padEnd(12)} ${(x.modelOnlyFps ? x.modelOnlyFps.toFixed(2) : '-').padStart(10)}  ${`${x.fps.toFixed(2)} (x${(x.fps / summary[pIx].fps).toFixed(2)})`.padEnd(25)} ` +
          `${x.modelRunsPerFrame.toFixed(2).padStart(10)}  ${x.peakRssMiB.toFixed(0).padStart(8)}  ` +
          sets.map((s) => `${f3(x.sets[s].iou)} (${x.sets[s].worst.sequence} ${f3(x.sets[s].worst.iou)})`.padEnd(34)).join('') +
          `${f3(x.sets.all.iou)} (${signed(x.sets.all.iou - summary[nIx].sets.all.iou)}; ${x.sets.all.worstVsU2net.sequence} ${signed(x.sets.all.worstVsU2net.delta)})`,
      );
    }
    console.log(`per sequence IoU: ${MODES.map((m) => m.name).join(' / ')}`);
    for (const r of rows) console.log(`  ${r.name.padEnd(20)} ${r.scores.map((x) => f3(x.iou)).join('  ')}`);
    console.log(
      `--best: mean IoU ${signed(checks.bestMeanVsU2net, 4)} vs u2net per frame (bound -0.010); ` +
        `${belowSmall.length === 0 ? 'no sequence below u2netp per frame' : `below u2netp per frame on ${belowSmall.map((x) => `${x.name} ${signed(x.scores[bestIx].iou - x.scores[pIx].iou)}`).join(', ')}`}; ` +
        `end-to-end x${checks.bestFpsVsU2netp.toFixed(2)} u2netp per frame's frames/s (bound x1.00)`,
    );
    console.log(
      `u2net-int8: mean IoU ${signed(checks.u2netInt8MeanVsU2net, 4)} vs u2net (bound -0.005); model-only x${checks.u2netInt8ModelOnlyVsU2net.toFixed(2)} u2net's (bound x1.80)`,
    );
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench:models failed: ${(err as Error).message}`);
  process.exit(1);
});
