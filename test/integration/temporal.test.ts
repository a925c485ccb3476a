// Temporal matting on real footage (DAVIS sequences, every frame in order, the real u2netp model),
// against per-frame matting in the same run:
// - the model on every frame (Kalman filter per pixel, native/temporal.h): on every davis sequence
//   IoU >= per-frame - 0.01, and mean background flicker <= 0.6x per-frame;
// - adaptive keyframes with smoothing (--fast's schedule, here with the float model): within 0.02 IoU
//   of per-frame on slow and on fast footage, fewer model runs on slow footage than on fast;
// - a fixed schedule halves the model runs; a gap or a new scene starts the stream afresh.
// The whole of davis and davis-fast on video input, with the int8 model: npm run bench:fast.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { scoreVideo, type VideoScore } from '../../src/lib/quality';
import { openSegmenter, type OpenSegmenter } from '../../src/lib/segmenter';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const davis = path.join(testdata, 'davis');

describeWith('../shared/testdata/davis', hasTestdata('davis'))('temporal matting (u2netp, DAVIS)', () => {
  let open: OpenSegmenter;
  let sequences: string[];
  beforeAll(async () => {
    open = await openSegmenter({ model: 'u2netp', threads: 2 });
    sequences = (await fs.readdir(davis, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  });
  afterAll(() => open?.segmenter.close());

  it('every sequence: IoU >= per-frame - 0.01, mean background flicker <= 0.6x per-frame', async () => {
    const rows: [string, VideoScore, VideoScore][] = [];
    for (const s of sequences) {
      const perFrame = await scoreVideo(open.segmenter, path.join(davis, s));
      const temporal = await scoreVideo(open.segmenter, path.join(davis, s), { temporal: true });
      rows.push([s, perFrame, temporal]);
      process.stdout.write(
        `${s.padEnd(15)} ${String(perFrame.frames).padStart(3)} frames  per-frame IoU ${perFrame.iou.toFixed(3)} flicker ${perFrame.flicker.toFixed(4)}` +
          `  temporal IoU ${temporal.iou.toFixed(3)} flicker ${temporal.flicker.toFixed(4)} (x${(temporal.flicker / perFrame.flicker).toFixed(2)})\n`,
      );
    }
    const mean = (f: (r: [string, VideoScore, VideoScore]) => number) => rows.reduce((n, r) => n + f(r), 0) / rows.length;
    const flickerRatio = mean((r) => r[2].flicker) / mean((r) => r[1].flicker);
    const worst = rows.reduce((w, r) => (r[2].iou - r[1].iou < w[2].iou - w[1].iou ? r : w));
    process.stdout.write(
      `mean: per-frame IoU ${mean((r) => r[1].iou).toFixed(4)}, temporal IoU ${mean((r) => r[2].iou).toFixed(4)}; worst ${worst[0]} ` +
        `${(worst[2].iou - worst[1].iou).toFixed(4)}; background flicker x${flickerRatio.toFixed(3)}\n`,
    );
    expect(rows.length).toBeGreaterThanOrEqual(5);
    expect(flickerRatio).toBeLessThanOrEqual(0.6);
    for (const [, perFrame, temporal] of rows) expect(temporal.iou).toBeGreaterThanOrEqual(perFrame.iou - 0.01);
  }, 1800000);

  it('adaptive keyframes: within 0.02 IoU of per-frame on slow and fast footage, fewer model runs on slow', async () => {
    const runs: Record<string, number> = {};
    const cases = [path.join(davis, 'blackswan'), ...(hasTestdata('davis-fast') ? [path.join(testdata, 'davis-fast', 'mallard-fly')] : [])];
    for (const dir of cases) {
      const perFrame = await scoreVideo(open.segmenter, dir, { maxFrames: 40 });
      const auto = await scoreVideo(open.segmenter, dir, { temporal: true, keyframeInterval: 'auto', smooth: true, maxFrames: 40 });
      runs[path.basename(dir)] = auto.modelRuns;
      process.stdout.write(`${path.basename(dir)}: adaptive keyframes ${auto.modelRuns}/${auto.frames} model runs, IoU ${auto.iou.toFixed(3)} vs per-frame ${perFrame.iou.toFixed(3)}\n`);
      expect(auto.iou).toBeGreaterThanOrEqual(perFrame.iou - 0.02);
      expect(auto.modelRuns).toBeGreaterThanOrEqual(10); // at least every 4th frame
    }
    expect(runs.blackswan).toBeLessThanOrEqual(20); // a slow swan: at most half the frames
    if (runs['mallard-fly'] !== undefined) expect(runs['mallard-fly']).toBeGreaterThan(runs.blackswan); // a flying duck: more
  }, 600000);

  it('--keyframe-interval 2: half the model runs, IoU within 0.03 of per-frame (first 40 frames)', async () => {
    for (const s of ['blackswan', 'dance-twirl']) {
      const perFrame = await scoreVideo(open.segmenter, path.join(davis, s), { maxFrames: 40 });
      const keyed = await scoreVideo(open.segmenter, path.join(davis, s), { temporal: true, keyframeInterval: 2, maxFrames: 40 });
      process.stdout.write(`${s}: keyframes every 2: ${keyed.modelRuns}/${keyed.frames} model runs, IoU ${keyed.iou.toFixed(3)} vs ${perFrame.iou.toFixed(3)}\n`);
      expect(keyed.modelRuns).toBe(20);
      expect(perFrame.modelRuns).toBe(40);
      expect(keyed.iou).toBeGreaterThanOrEqual(perFrame.iou - 0.03); // measured: -0.005 and -0.018
    }
  }, 600000);

  it('the first frame, a new scene and a gap in frame numbers start afresh, as a new stream would', async () => {
    const a = await fs.readFile(path.join(davis, 'blackswan', '00000.jpg'));
    const b = await fs.readFile(path.join(davis, 'dance-twirl', '00000.jpg'));
    const stream = `reset-test-${process.pid}`;
    let fresh = 0;
    const temporal = async (jpg: Buffer, frame: number, id = stream) =>
      (await open.segmenter.process(jpg, { output: 'mask', encoding: 'raw', temporal: { stream: id, frame } })).data;
    const alone = async (jpg: Buffer) => {
      const id = `${stream}-fresh-${fresh++}`;
      const out = await temporal(jpg, 0, id);
      open.segmenter.endStream(id);
      return out;
    };
    const first = await temporal(a, 0);
    expect(first.equals(await alone(a))).toBe(true); // first frame
    // the prediction through the contrast curve: nearly all pixels 0 or 255
    expect(first.filter((v) => v > 0 && v < 255).length).toBeLessThan(first.length * 0.05);
    expect((await temporal(b, 1)).equals(await alone(b))).toBe(true); // another scene entirely
    expect((await temporal(a, 7)).equals(await alone(a))).toBe(true); // a gap in frame numbers
    const next = await fs.readFile(path.join(davis, 'blackswan', '00001.jpg'));
    expect((await temporal(next, 8)).equals(await alone(next))).toBe(false); // carried: smoothed
    open.segmenter.endStream(stream);
  });
});
