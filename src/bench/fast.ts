// npm run bench:fast: quality and speed of the video modes, per sequence, on video input. Every
// DAVIS sequence of davis/ and davis-fast/ becomes an 854x480 H.264 file; `bgrm process FILE -o DIR
// --format mask` runs on it as per-frame float u2netp, temporal (float, the model on every frame)
// and --fast (int8, adaptive keyframes). For each sequence and mode: IoU against the ground truth,
// background flicker, model runs per frame and frames/s (start-up excluded); the worst sequence of
// each mode; and --fast's frames/s over all davis-fast frames against float u2netp model-only
// frames/s measured in the same run.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { projectRoot } from '../lib/native';
import { arg, benchModels, davisVideos, runProcess, scoreMasks, type Score, type Summary } from './common';
import { modelOnly } from './model-only';

const MODES = [
  { name: 'per-frame', args: ['--model', 'u2netp', '--no-temporal'] },
  { name: 'temporal', args: ['--model', 'u2netp'] },
  { name: '--fast', args: ['--fast'] },
] as const;

const f3 = (x: number) => x.toFixed(3);
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;

async function main(): Promise<void> {
  const testdata = path.resolve(arg('testdata', path.join(projectRoot, '..', 'shared', 'testdata')));
  const only = arg('sequences', '');
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-bench-fast-'));
  try {
    const sequences = await davisVideos(testdata, tmp, only);
    const sets = [...new Set(sequences.map((s) => s.set))];
    // int8 calibrated on one davis video (as a user's first --fast run would), outside the timed runs
    const models = await benchModels(tmp, sequences.find((s) => s.name === 'dance-twirl')?.video ?? sequences[0].video);
    const floatFps = await modelOnly(models.float, 2, 20);
    console.log(
      `bench:fast: ${sequences.length} sequences as 854x480 H.264, ${os.availableParallelism()} cores, default thread layout; ${models.int8Note}; ` +
        `float u2netp model-only ${floatFps.toFixed(2)} frames/s (${(1000 / floatFps).toFixed(0)} ms, 2 threads, this run)`,
    );
    console.log(`${'sequence'.padEnd(18)} ${MODES.map((m) => `${m.name}: IoU  flicker  runs/f  fps`.padEnd(40)).join('')}`);
    const rows: { set: string; name: string; scores: Score[] }[] = [];
    for (const s of sequences) {
      const scores: Score[] = [];
      for (const m of MODES) {
        const out = path.join(tmp, 'out');
        const summary = await runProcess<Summary>([s.video, '-o', out, '--format', 'mask', '--quiet', ...m.args]);
        scores.push(await scoreMasks(out, s.dir, summary));
        await fs.rm(out, { recursive: true, force: true });
      }
      rows.push({ set: s.set, name: s.name, scores });
      const base = scores[0];
      console.log(
        `${s.name.padEnd(18)} ` +
          scores
            .map((x, i) => `${f3(x.iou)}${i > 0 ? ` (${signed(x.iou - base.iou)})` : '         '} ${x.flicker.toFixed(4)} ${(x.modelRuns / x.frames).toFixed(2)} ${(x.frames / x.seconds).toFixed(1).padStart(5)}`.padEnd(40))
            .join(''),
      );
    }
    for (const set of [...sets, 'all']) {
      const r = rows.filter((x) => set === 'all' || x.set === set);
      if (r.length === 0) continue;
      console.log(`${set} (${r.length} sequences):`);
      const mean = (f: (x: (typeof r)[number]) => number) => r.reduce((n, x) => n + f(x), 0) / r.length;
      for (let i = 1; i < MODES.length; i++) {
        const worst = r.reduce((w, x) => (x.scores[i].iou - x.scores[0].iou < w.scores[i].iou - w.scores[0].iou ? x : w));
        const frames = r.reduce((n, x) => n + x.scores[i].frames, 0);
        const seconds = r.reduce((n, x) => n + x.scores[i].seconds, 0);
        const runs = r.reduce((n, x) => n + x.scores[i].modelRuns, 0);
        const regionRuns = r.reduce((n, x) => n + x.scores[i].regionRuns, 0);
        console.log(
          `  ${MODES[i].name.padEnd(9)} IoU ${f3(mean((x) => x.scores[i].iou))} vs per-frame ${f3(mean((x) => x.scores[0].iou))} (${signed(mean((x) => x.scores[i].iou - x.scores[0].iou))}), ` +
            `worst ${worst.name} ${signed(worst.scores[i].iou - worst.scores[0].iou)}; flicker x${(mean((x) => x.scores[i].flicker) / mean((x) => x.scores[0].flicker)).toFixed(3)}; ` +
            `${(runs / frames).toFixed(3)} model runs per frame${regionRuns ? ` (${Math.round((100 * regionRuns) / runs)}% on the region around the subject)` : ''}; ${(frames / seconds).toFixed(2)} frames/s = x${(frames / seconds / floatFps).toFixed(2)} float model-only`,
        );
      }
      const pfFrames = r.reduce((n, x) => n + x.scores[0].frames, 0);
      const pfSeconds = r.reduce((n, x) => n + x.scores[0].seconds, 0);
      console.log(`  per-frame ${(pfFrames / pfSeconds).toFixed(2)} frames/s = x${(pfFrames / pfSeconds / floatFps).toFixed(2)} float model-only`);
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench:fast failed: ${(err as Error).message}`);
  process.exit(1);
});
