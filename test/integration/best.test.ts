// --best: the full U-2-Net's quality at the small float model's speed.
// - without u2net installed it stops at once, naming the model and how to fetch it;
// - --fast and --best together are a usage error;
// - on a video it makes u2net-int8 once from its own first frames (u2net's quantisation: ONNX Runtime
//   runs it as QLinearConv, the output correction is recorded), runs it on every frame with temporal
//   matting, and its masks score at least u2netp's per frame on the same frames (DAVIS ground truth).
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { greyOf, iou } from '../../src/lib/quality';
import { runCli } from '../helpers/cli';
import { describeWith, hasTestdata, modelPath, testdata } from '../helpers/testdata';

jest.setTimeout(20 * 60 * 1000);

const video = path.join(testdata, 'video', 'dance-twirl.mp4');
const truth = path.join(testdata, 'davis', 'dance-twirl');
const FRAMES = 16;

async function meanIou(outDir: string): Promise<number> {
  const gt = (await fs.readdir(truth)).filter((f) => f.endsWith('.png')).sort().slice(0, FRAMES);
  let sum = 0;
  for (let i = 0; i < gt.length; i++) {
    const a = await greyOf(await fs.readFile(path.join(outDir, `${String(i).padStart(6, '0')}.png`)));
    const g = await greyOf(await fs.readFile(path.join(truth, gt[i])));
    sum += iou(a.data, g.data);
  }
  return sum / gt.length;
}

describeWith('../shared/testdata (video)', hasTestdata('video'))('--best', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });
  async function modelsDir(models: string[]): Promise<string> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-best-'));
    dirs.push(dir);
    for (const m of models) {
      await fs.symlink(modelPath(m), path.join(dir, `${m}.onnx`));
      // the lean graph made beside the installed model (a minute for u2net otherwise)
      const lean = modelPath(m).replace(/\.onnx$/, '.lean.onnx');
      if (existsSync(lean) && existsSync(`${lean}.json`)) {
        await fs.copyFile(`${lean}.json`, path.join(dir, `${m}.lean.onnx.json`));
        await fs.symlink(lean, path.join(dir, `${m}.lean.onnx`));
      }
    }
    return dir;
  }

  it('without u2net installed it stops at once and says how to fetch it', async () => {
    const d = await modelsDir(['u2netp']);
    const r = await runCli(['process', video, '-o', path.join(d, 'out'), '--best', '--max-frames', '2'], { env: { BGRM_MODELS_DIR: d } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_MODEL_NOT_INSTALLED');
    expect(r.stderr).toContain('bgrm models pull u2net');
    expect(existsSync(path.join(d, 'out'))).toBe(false);
  });

  it('--fast and --best together are a usage error', async () => {
    const r = await runCli(['process', video, '-o', path.join(os.tmpdir(), 'never'), '--best', '--fast']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--fast.*--best|--best.*--fast/);
  });

  describeWith('models/u2net.onnx and ../shared/testdata/davis (bgrm models pull u2net)', existsSync(modelPath('u2net')) && hasTestdata('davis'))('with u2net', () => {
    it('makes u2net-int8 once (QLinearConv, output correction), runs it on every frame with temporal matting, and scores at least u2netp per frame', async () => {
      const d = await modelsDir(['u2netp', 'u2net']);
      const out = path.join(d, 'best');
      const r = await runCli(['process', video, '-o', out, '--best', '--format', 'mask', '--max-frames', String(FRAMES), '--json'], { env: { BGRM_MODELS_DIR: d } });
      expect(r.stderr).toContain('making u2net-int8 once');
      expect(r.code).toBe(0);
      const summary = JSON.parse(r.stdout.toString()) as { model: string; succeeded: number; keyframeInterval: number | 'auto'; modelRuns: number; temporal: boolean };
      expect(summary).toMatchObject({ model: 'u2net-int8', succeeded: FRAMES, keyframeInterval: 1, modelRuns: FRAMES, temporal: true });

      const record = JSON.parse(await fs.readFile(path.join(d, 'u2net-int8.onnx.json'), 'utf8'));
      // quantised from the lean graph: u2net's 119 Convs, the decoders' split in two or three
      const convs = record.report.convs as number;
      expect(convs).toBeGreaterThan(119);
      expect(record.report.int8Convs).toBeGreaterThanOrEqual(0.85 * convs);
      // counted in the graph ONNX Runtime optimises and runs, not in the file
      expect(record.fusion.qlinearConv).toBeGreaterThanOrEqual(0.85 * convs);
      expect(record.report.narrowConvs).toBe(6); // the side outputs, each as three nodes (two Convs)
      expect(record.fusion.qlinearConv + record.fusion.floatConv).toBeLessThanOrEqual(convs + 2 * record.report.narrowConvs);
      expect(record.report.outputCorrection.after).toBeGreaterThanOrEqual(record.report.outputCorrection.before);
      expect((await fs.stat(path.join(d, 'u2net-int8.onnx'))).size).toBeLessThan(0.4 * (await fs.stat(modelPath('u2net'))).size);

      const small = path.join(d, 'small');
      const p = await runCli(['process', video, '-o', small, '-m', 'u2netp', '--no-temporal', '--format', 'mask', '--max-frames', String(FRAMES), '--json'], { env: { BGRM_MODELS_DIR: d } });
      expect(p.code).toBe(0);
      const [best, u2netp] = [await meanIou(out), await meanIou(small)];
      process.stdout.write(`dance-twirl, first ${FRAMES} frames: --best IoU ${best.toFixed(4)} (${summary.modelRuns} model runs), u2netp per frame ${u2netp.toFixed(4)}\n`);
      expect(best).toBeGreaterThanOrEqual(u2netp);
    });
  });
});
