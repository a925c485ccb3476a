/**
 * @jest-environment ./test/helpers/process-typed-arrays.js
 */
// int8 quantisation of the real u2netp, calibrated on real footage:
// - `process --fast` with no int8 model makes one, calibrated on the first frames of its input, and
//   runs it; `models quantize` with the same frames finds it up to date (cached by content hash);
// - ONNX Runtime fuses the QDQ graph into QLinearConv (counted in the graph it actually runs), and
//   no Resize into a uint8 one; weights are int8 only where the Conv runs in int8;
// - the outlier channels of u2netp are found and kept float;
// - IoU against DAVIS ground truth stays within 0.005 of the float model on the same frames;
// - the model takes any input size that is a multiple of 32, and adaptive keyframes run it on the
//   region around the subject (every 4th run on the whole frame) within 0.02 IoU of per-frame float;
// - the same model and the same frames give a byte-identical file;
// - bad calibration input gets a clear error; a single photo is too little to calibrate on.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { splitConcatConvs } from '../../src/lib/model-lean';
import { decodeModel, floatValues, graphOf, opCounts } from '../../src/lib/onnx-graph';
import { scoreVideo } from '../../src/lib/quality';
import { openSegmenter } from '../../src/lib/segmenter';
import { runCli } from '../helpers/cli';
import { describeWith, hasTestdata, modelPath, testdata } from '../helpers/testdata';

jest.setTimeout(15 * 60 * 1000);

const video = path.join(testdata, 'video', 'dance-twirl.mp4');
const davis = path.join(testdata, 'davis');

async function modelsDirWithFloat(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-quant-'));
  await fs.symlink(modelPath('u2netp'), path.join(dir, 'u2netp.onnx'));
  return dir;
}

const sha256 = async (file: string) => createHash('sha256').update(await fs.readFile(file)).digest('hex');

describeWith('../shared/testdata (davis and video)', hasTestdata('davis') && hasTestdata('video'))('int8 quantisation (u2netp)', () => {
  let dir: string;
  const dirs: string[] = [];
  beforeAll(async () => {
    dir = await modelsDirWithFloat();
    dirs.push(dir);
  });
  afterAll(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });

  it('a one-photo first input never makes a 1-frame int8 model: --fast runs float and says how to make one', async () => {
    const d = await modelsDirWithFloat();
    dirs.push(d);
    const photo = path.join(davis, 'dog', '00000.jpg');
    const r = await runCli(['process', photo, '-o', path.join(d, 'photo.png'), '--fast', '--json'], { env: { BGRM_MODELS_DIR: d } });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ model: 'u2netp', succeeded: 1 });
    expect(r.stderr).toContain('float model runs this time');
    expect(r.stderr).toContain('bgrm models quantize u2netp --calibration');
    await expect(fs.stat(path.join(d, 'u2netp-int8.onnx'))).rejects.toThrow();
    // asked directly, quantize refuses too, naming the way out
    const q = await runCli(['models', 'quantize', 'u2netp', '--calibration', photo], { env: { BGRM_MODELS_DIR: d } });
    expect(q.code).toBe(1);
    expect(q.stderr).toContain('ERR_CALIBRATION_TOO_SMALL');
    expect(q.stderr).toContain('--min-frames');
    await expect(fs.stat(path.join(d, 'u2netp-int8.onnx'))).rejects.toThrow();
  });

  it('process --fast makes u2netp-int8 from its own first frames, runs it, and records how it was made', async () => {
    const out = path.join(dir, 'out');
    const r = await runCli(['process', video, '-o', out, '--fast', '--max-frames', '24', '--json'], { env: { BGRM_MODELS_DIR: dir } });
    expect(r.stderr).toContain('making u2netp-int8 once');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout.toString()) as { model: string; succeeded: number; keyframeInterval: string };
    expect(summary).toMatchObject({ model: 'u2netp-int8', succeeded: 24, keyframeInterval: 'auto' });
    expect((await fs.readdir(out)).filter((f) => f.endsWith('.png'))).toHaveLength(24);

    const record = JSON.parse(await fs.readFile(path.join(dir, 'u2netp-int8.onnx.json'), 'utf8'));
    expect(record.calibration.frames).toBe(30); // 90 frames, every 3rd
    expect(record.fromSha256).toBe(await sha256(modelPath('u2netp')));
    // output bias correction ran on the calibration frames and never made the masks agree less
    expect(record.report.outputCorrection.before).toBeGreaterThan(0.8);
    expect(record.report.outputCorrection.after).toBeGreaterThanOrEqual(record.report.outputCorrection.before);
    process.stdout.write(`int8 record: ${JSON.stringify({ ...record.report, outlierTensors: record.report.outlierTensors.length })}\n`);
    process.stdout.write(`fusion: ${JSON.stringify(record.fusion.ops)}\n`);
  });

  it('ONNX Runtime runs the int8 model as QLinearConv and the lean graph\'s sums as QLinearAdd; outlier channels stay float; the file is a third of the size', async () => {
    const record = JSON.parse(await fs.readFile(path.join(dir, 'u2netp-int8.onnx.json'), 'utf8'));
    const { report, fusion } = record;
    // quantised from the lean graph (model-lean.ts): 119 Convs, 51 of them split in two or three
    const lean = decodeModel(await fs.readFile(modelPath('u2netp')));
    const split = splitConcatConvs(lean);
    const convs = opCounts(lean).Conv;
    expect(convs).toBeGreaterThan(119);
    expect(report.convs).toBe(convs);
    // u2netp has nearly constant, very large channels (see quantize.ts): they must be found
    expect(report.outlierTensors.length).toBeGreaterThanOrEqual(2);
    expect(report.int8Convs).toBeGreaterThanOrEqual(0.85 * convs);
    // counted in the graph ONNX Runtime optimises and runs (level "all"), not in the file
    expect(fusion.qlinearConv).toBeGreaterThanOrEqual(0.85 * convs);
    // the six one-channel side outputs each run as three nodes, two of them Convs (model-lean.ts)
    expect(report.narrowConvs).toBe(6);
    expect(fusion.qlinearConv + fusion.floatConv).toBeLessThanOrEqual(convs + 2 * report.narrowConvs);
    // their fusion as Mul and Add (model-lean.ts scalarConvs)
    expect(report.scalarConvs).toBe(6);
    // int8 weights only where ONNX Runtime runs the Conv in int8: the float ones (head, outliers) keep theirs
    expect(report.int8Convs).toBe(fusion.qlinearConv);
    // every Resize has output parameters of its own, so that ONNX Runtime keeps it float (its uint8
    // Resize runs in NCHW, several times slower)
    const int8 = graphOf(decodeModel(await fs.readFile(path.join(dir, 'u2netp-int8.onnx'))));
    const inits = new Map(int8.initializer.map((t) => [t.name!, t]));
    const qparams = (t: string) => {
      const scale = inits.get(`${t}_scale`);
      const zp = inits.get(`${t}_zero_point`);
      return scale && zp ? `${floatValues(scale)[0]}/${Buffer.from(zp.rawData ?? []).toString('hex')}` : undefined;
    };
    const resizes = int8.node.filter((n) => n.opType === 'Resize' && n.input[0].endsWith('_dequantized'));
    expect(resizes.length).toBeGreaterThan(20);
    for (const n of resizes) {
      const out = qparams(n.output[0]);
      if (out !== undefined) expect(`${n.name}: ${out}`).not.toBe(`${n.name}: ${qparams(n.input[0].slice(0, -'_dequantized'.length))}`);
    }
    expect(fusion.ops['com.microsoft.QLinearAdd']).toBeGreaterThanOrEqual(0.8 * split);
    // each side output's taps: a MatMul over the channels of its dequantised input, which ONNX
    // Runtime keeps as a MatMul (no blocked-layout copy of the 64-channel tensor in float)
    expect(int8.node.filter((n) => n.opType === 'MatMul')).toHaveLength(report.narrowConvs);
    expect(fusion.ops.MatMul).toBe(report.narrowConvs);
    const bytes = (await fs.stat(path.join(dir, 'u2netp-int8.onnx'))).size;
    expect(bytes).toBe(report.bytes);
    expect(bytes).toBeLessThan(0.4 * (await fs.stat(modelPath('u2netp'))).size);
  });

  it('models quantize with the same frames finds the model up to date', async () => {
    const r = await runCli(['models', 'quantize', 'u2netp', '--calibration', video, '--json'], { env: { BGRM_MODELS_DIR: dir } });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ upToDate: true, name: 'u2netp-int8' });
  });

  it('IoU against DAVIS ground truth within 0.005 of float u2netp on the same frames', async () => {
    const previous = process.env.BGRM_MODELS_DIR;
    process.env.BGRM_MODELS_DIR = dir;
    try {
      const float = await openSegmenter({ model: 'u2netp', threads: 2 });
      const int8 = await openSegmenter({ model: 'u2netp-int8', threads: 2 });
      const sequences = (await fs.readdir(davis)).sort();
      let sumF = 0;
      let sumQ = 0;
      for (const s of sequences) {
        const f = await scoreVideo(float.segmenter, path.join(davis, s), { maxFrames: 30 });
        const q = await scoreVideo(int8.segmenter, path.join(davis, s), { maxFrames: 30 });
        sumF += f.iou;
        sumQ += q.iou;
        process.stdout.write(`${s.padEnd(15)} float IoU ${f.iou.toFixed(4)} ${f.fps.toFixed(2)} fps   int8 IoU ${q.iou.toFixed(4)} ${q.fps.toFixed(2)} fps\n`);
      }
      float.segmenter.close();
      int8.segmenter.close();
      const iouF = sumF / sequences.length;
      const iouQ = sumQ / sequences.length;
      process.stdout.write(`mean IoU: float ${iouF.toFixed(4)}, int8 ${iouQ.toFixed(4)} (${(iouQ - iouF).toFixed(4)})\n`);
      expect(Math.abs(iouQ - iouF)).toBeLessThanOrEqual(0.005);
    } finally {
      if (previous === undefined) delete process.env.BGRM_MODELS_DIR;
      else process.env.BGRM_MODELS_DIR = previous;
    }
  });

  it('the int8 model takes any input size that is a multiple of 32, and adaptive keyframes run it on the region around the subject', async () => {
    const file = path.join(dir, 'u2netp-int8.onnx');
    const model = graphOf(decodeModel(await fs.readFile(file)));
    expect(model.input[0].type!.tensorType!.shape!.dim!.slice(2).map((d) => d.dimParam)).toEqual(['height', 'width']);
    expect(model.node.filter((n) => n.opType === 'Shape')).toHaveLength(0); // every Resize has its constant scale
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
    const session = await ort.InferenceSession.create(file);
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', new Float32Array(3 * 128 * 224), [1, 3, 128, 224]) });
    expect(out[session.outputNames[0]].dims).toEqual([1, 1, 128, 224]);
    await session.release();

    const previous = process.env.BGRM_MODELS_DIR;
    process.env.BGRM_MODELS_DIR = dir;
    try {
      const float = await openSegmenter({ model: 'u2netp', threads: 2 });
      const int8 = await openSegmenter({ model: 'u2netp-int8', threads: 2 });
      const seq = path.join(davis, 'dog'); // a dog walking across: the region moves with it
      const perFrame = await scoreVideo(float.segmenter, seq, { maxFrames: 40 });
      const opts = { temporal: true, keyframeInterval: 'auto' as const, smooth: true, maxFrames: 40 };
      const region = await scoreVideo(int8.segmenter, seq, opts);
      const whole = await scoreVideo(int8.segmenter, seq, { ...opts, roi: false });
      float.segmenter.close();
      int8.segmenter.close();
      process.stdout.write(
        `dog, 40 frames: per-frame float IoU ${perFrame.iou.toFixed(4)}; adaptive int8 on regions ${region.iou.toFixed(4)} ` +
          `(${region.regionRuns} of ${region.modelRuns} runs on a region), on whole frames ${whole.iou.toFixed(4)} (${whole.modelRuns} runs)\n`,
      );
      // runs see a region; the whole frame at least every 4th run (a subject may come in anywhere)
      expect(region.regionRuns).toBeGreaterThanOrEqual(region.modelRuns / 3);
      expect(region.regionRuns).toBeLessThanOrEqual(Math.ceil((region.modelRuns * 3) / 4));
      expect(whole.regionRuns).toBe(0);
      expect(region.iou).toBeGreaterThanOrEqual(perFrame.iou - 0.02);
    } finally {
      if (previous === undefined) delete process.env.BGRM_MODELS_DIR;
      else process.env.BGRM_MODELS_DIR = previous;
    }
  });

  it('the same model and frames give a byte-identical file', async () => {
    const a = await modelsDirWithFloat();
    const b = await modelsDirWithFloat();
    dirs.push(a, b);
    const frames = path.join(davis, 'dog');
    for (const d of [a, b]) {
      const r = await runCli(['models', 'quantize', 'u2netp', '--calibration', frames, '--frames', '6', '--json'], { env: { BGRM_MODELS_DIR: d } });
      expect(r.code).toBe(0);
    }
    expect(await sha256(path.join(a, 'u2netp-int8.onnx'))).toBe(await sha256(path.join(b, 'u2netp-int8.onnx')));
    // and other frames give other ranges, so another file
    expect(await sha256(path.join(a, 'u2netp-int8.onnx'))).not.toBe(await sha256(path.join(dir, 'u2netp-int8.onnx')));
  });

  it('bad calibration input: a clear error and exit 1', async () => {
    const missing = await runCli(['models', 'quantize', 'u2netp', '--calibration', '/nonexistent/frames'], { env: { BGRM_MODELS_DIR: dir } });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('calibration source not found');

    const bad = path.join(dir, 'bad-frames');
    await fs.mkdir(bad);
    await fs.writeFile(path.join(bad, '00000.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3]));
    const corrupt = await runCli(['models', 'quantize', 'u2netp', '--calibration', bad], { env: { BGRM_MODELS_DIR: dir } });
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toContain('00000.jpg');
    expect(corrupt.stderr).toContain('ERR_CALIBRATION');

    const empty = path.join(dir, 'empty');
    await fs.mkdir(empty);
    const none = await runCli(['models', 'quantize', 'u2netp', '--calibration', empty], { env: { BGRM_MODELS_DIR: dir } });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no images');

    const unknown = await runCli(['process', path.join(davis, 'dog', '00000.jpg'), '-o', path.join(dir, 'x.png'), '--model', 'nosuch-int8'], { env: { BGRM_MODELS_DIR: dir } });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('nosuch-int8');
  });
});
