// bgrm process end to end: real model, real files and videos, every documented outcome and exit code.
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../../src/lib/native';
import { alphaOf } from '../../src/lib/quality';
import { runCli, spawnBgrm } from '../helpers/cli';
import { describeWith, hasTestdata, modelPath, testdata } from '../helpers/testdata';

const photo = path.join(testdata, 'rembg', 'car-1.jpg');
const video = path.join(testdata, 'video', 'breakdance.mp4');

function fraction(a: Uint8Array, pred: (v: number) => boolean): number {
  let n = 0;
  for (const v of a) if (pred(v)) n++;
  return n / a.length;
}

describeWith('../shared/testdata (rembg, video)', hasTestdata('rembg') && hasTestdata('video'))('bgrm process', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-e2e-'));
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('photo -> RGBA PNG with a real alpha, and a --json summary', async () => {
    const out = path.join(tmp, 'car.png');
    const r = await runCli(['process', photo, '-o', out, '--json']);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout.toString());
    expect(summary).toMatchObject({ frames: 1, succeeded: 1, failed: 0, model: 'u2netp' });
    expect(summary.stageMs.inferMs).toBeGreaterThan(0);
    expect(summary.peakRssBytes).toBeGreaterThan(32 * 2 ** 20); // node + the model at least
    const decoded = await native().decode(await fs.readFile(out), { channels: 4 });
    expect([decoded.width, decoded.height]).toEqual([480, 360]);
    const alpha = await alphaOf(await fs.readFile(out));
    expect(fraction(alpha.data, (v) => v === 0)).toBeGreaterThan(0.2);
    expect(fraction(alpha.data, (v) => v >= 200)).toBeGreaterThan(0.1); // the car is opaque
  });

  it('folder with a sub-folder -> mirrored PNGs', async () => {
    const input = path.join(tmp, 'in');
    await fs.mkdir(path.join(input, 'sub'), { recursive: true });
    await fs.copyFile(photo, path.join(input, 'a.jpg'));
    await fs.copyFile(path.join(testdata, 'rembg', 'cloth-1.jpg'), path.join(input, 'sub', 'b.JPG'));
    await fs.writeFile(path.join(input, 'notes.txt'), 'not an image');
    const out = path.join(tmp, 'out-folder');
    const r = await runCli(['process', input, '-o', out, '--concurrency', '2']);
    expect(r.code).toBe(0);
    expect(existsSync(path.join(out, 'a.png'))).toBe(true);
    expect(existsSync(path.join(out, 'sub', 'b.png'))).toBe(true);
    expect(existsSync(path.join(out, 'notes.png'))).toBe(false);
  });

  it('video -> numbered PNG folder, in order', async () => {
    const out = path.join(tmp, 'frames');
    const r = await runCli(['process', video, '-o', out, '--max-frames', '8', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ frames: 8, succeeded: 8, temporal: true, keyframeInterval: 1 });
    const files = (await fs.readdir(out)).sort();
    expect(files).toEqual(['000000.png', '000001.png', '000002.png', '000003.png', '000004.png', '000005.png', '000006.png', '000007.png']);
    const first = await native().decode(await fs.readFile(path.join(out, files[0])), { channels: 4 });
    expect([first.width, first.height]).toEqual([854, 480]);
  });

  // (--model u2netp: the int8 model that --fast makes and prefers is tested in test/integration/quantize.test.ts)
  it('--fast on a video: adaptive keyframes, smoothed; a fixed interval; --no-temporal: every frame alone', async () => {
    const fast = await runCli(['process', video, '-o', path.join(tmp, 'fast'), '--max-frames', '9', '--fast', '--model', 'u2netp', '--json']);
    expect(fast.code).toBe(0);
    const summary = JSON.parse(fast.stdout.toString());
    expect(summary).toMatchObject({ succeeded: 9, temporal: true, keyframeInterval: 'auto', smoothed: true });
    // the model runs at least every 4th frame (0, then by 4 and by 8), and where the matte needs it
    expect(summary.modelRuns).toBeGreaterThanOrEqual(3);
    expect(summary.modelRuns).toBeLessThanOrEqual(9);
    const fixed = await runCli(['process', video, '-o', path.join(tmp, 'fixed'), '--max-frames', '9', '--keyframe-interval', '3', '--json']);
    // frames 0, 3 and 6 run the model; optical flow carries the rest (no cut in these 9 frames)
    expect(JSON.parse(fixed.stdout.toString())).toMatchObject({ succeeded: 9, keyframeInterval: 3, modelRuns: 3 });
    // an interval longer than the frames in flight: frames held for smoothing leave (unsmoothed)
    // before the window fills, instead of waiting forever for the next model run
    const long = await runCli(['process', video, '-o', path.join(tmp, 'long'), '--max-frames', '12', '--keyframe-interval', '8', '--concurrency', '3', '--format', 'mask', '--json']);
    expect(long.code).toBe(0);
    expect(JSON.parse(long.stdout.toString())).toMatchObject({ succeeded: 12, keyframeInterval: 8, smoothed: true, modelRuns: 2 });
    expect(await fs.readdir(path.join(tmp, 'long'))).toHaveLength(12);
    const bad = await runCli(['process', video, '-o', path.join(tmp, 'bad'), '--keyframe-interval', 'often']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--keyframe-interval must be auto or a whole number');
    const plain = await runCli(['process', video, '-o', path.join(tmp, 'plain'), '--max-frames', '2', '--no-temporal', '--json']);
    expect(JSON.parse(plain.stdout.toString())).toMatchObject({ succeeded: 2, temporal: false, modelRuns: 2 });
    // the first frame of a stream is the model's own matte through the contrast curve, so it differs from per-frame
    const a = await fs.readFile(path.join(tmp, 'fast', '000000.png'));
    const b = await fs.readFile(path.join(tmp, 'plain', '000000.png'));
    expect(a.equals(b)).toBe(false);
    const photos = await runCli(['process', path.join(testdata, 'rembg', 'car-1.jpg'), '-o', path.join(tmp, 'fast-photo.png'), '--fast', '--model', 'u2netp', '--json']);
    expect(JSON.parse(photos.stdout.toString())).toMatchObject({ succeeded: 1, temporal: false }); // photos stay unrelated
  });

  it('video -> .webm whose alpha plane survives decoding', async () => {
    const out = path.join(tmp, 'clip.webm');
    const r = await runCli(['process', video, '-o', out, '--max-frames', '6']);
    expect(r.code).toBe(0);
    // libvpx-vp9 decodes the alpha side data; alphaextract gives it as grey frames.
    const alpha = execFileSync('ffmpeg', ['-v', 'error', '-c:v', 'libvpx-vp9', '-i', out, '-vf', 'alphaextract', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'], {
      maxBuffer: 64 * 2 ** 20,
    });
    expect(alpha.length).toBe(854 * 480 * 6);
    expect(fraction(alpha, (v) => v < 16)).toBeGreaterThan(0.2); // transparent background
    expect(fraction(alpha, (v) => v > 240)).toBeGreaterThan(0.01); // opaque dancer
  });

  it('video -> .mov (ProRes 4444 with alpha)', async () => {
    const out = path.join(tmp, 'clip.mov');
    const r = await runCli(['process', video, '-o', out, '--max-frames', '3']);
    expect(r.code).toBe(0);
    const probe = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,pix_fmt', '-of', 'csv=p=0', out]).toString();
    expect(probe).toContain('prores');
    expect(probe).toContain('yuva444p');
  });

  it('stdin -> stdout in a shell pipeline', async () => {
    const r = await runCli(['process', '-', '-o', '-'], { stdin: await fs.readFile(photo) });
    expect(r.code).toBe(0);
    expect(r.stdout.subarray(1, 4).toString()).toBe('PNG');
    const alpha = await alphaOf(r.stdout);
    expect(alpha.width).toBe(480);
  });

  it('--format mask writes a grey PNG; --background composites to RGB', async () => {
    const mask = path.join(tmp, 'mask.png');
    expect((await runCli(['process', photo, '-o', mask, '--format', 'mask'])).code).toBe(0);
    expect((await fs.readFile(mask))[25]).toBe(0); // IHDR colour type 0: greyscale
    const green = path.join(tmp, 'green.png');
    expect((await runCli(['process', photo, '-o', green, '--background', '#00ff00'])).code).toBe(0);
    expect((await fs.readFile(green))[25]).toBe(2); // colour type 2: RGB
    const rgb = await native().decode(await fs.readFile(green));
    expect([...rgb.data.subarray(0, 3)]).toEqual([0, 255, 0]); // the top-left corner is background
  });

  it('corrupt, truncated and missing inputs are each reported; good ones still succeed; exit 1', async () => {
    const bad = path.join(tmp, 'bad.jpg');
    const cut = path.join(tmp, 'cut.jpg');
    await fs.writeFile(bad, 'this is not an image');
    const jpg = await fs.readFile(photo);
    await fs.writeFile(cut, jpg.subarray(0, jpg.length >> 1));
    const out = path.join(tmp, 'mixed');
    const r = await runCli(['process', bad, cut, path.join(tmp, 'missing.jpg'), photo, '-o', out, '--json']);
    expect(r.code).toBe(1);
    const s = JSON.parse(r.stdout.toString());
    expect(s).toMatchObject({ frames: 4, succeeded: 1, failed: 3 });
    expect(s.failures.map((f: { code: string }) => f.code)).toEqual(['ERR_UNSUPPORTED_FORMAT', 'ERR_DECODE', 'ERR_FILE_NOT_FOUND']);
    expect(r.stderr).toContain('missing.jpg');
    expect(existsSync(path.join(out, 'car-1.png'))).toBe(true);
  });

  it('unknown model: exit 1 naming the known ones', async () => {
    const r = await runCli(['process', photo, '-o', path.join(tmp, 'x.png'), '--model', 'nosuch']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_UNKNOWN_MODEL');
    expect(r.stderr).toContain('u2netp');
  });

  it('a file that is not a model: exit 1 with ERR_MODEL_LOAD', async () => {
    const fake = path.join(tmp, 'fake.onnx');
    await fs.writeFile(fake, 'not a model');
    const r = await runCli(['process', photo, '-o', path.join(tmp, 'x.png'), '--model', fake]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_MODEL_LOAD');
  });

  it('SIGINT stops a long video cleanly: frames in flight are written, summary says interrupted, exit 130', async () => {
    const out = path.join(tmp, 'stopped');
    const child = spawnBgrm(['process', video, '-o', out, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    // wait until a few frames are written, then interrupt
    for (let i = 0; i < 600 && (await fs.readdir(out).catch(() => [])).filter((f) => f.endsWith('.png')).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    const s = JSON.parse(stdout);
    expect(s.interrupted).toBe(true);
    expect(s.succeeded).toBeGreaterThanOrEqual(2);
    expect(s.succeeded).toBeLessThan(84);
    const pngs = (await fs.readdir(out)).filter((f) => f.endsWith('.png'));
    expect(pngs).toHaveLength(s.succeeded); // every counted frame is on disk, no temporary files left
    expect((await fs.readdir(out)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('--device cuda where CUDA cannot be loaded: exit 1 saying what is missing', async () => {
    const r = await runCli(['process', photo, '-o', path.join(tmp, 'x.png'), '--device', 'cuda']);
    if (r.code === 0) return; // a machine with a working CUDA provider: nothing to report
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_CUDA_UNAVAILABLE');
    expect(r.stderr).toMatch(/--device cpu/);
  });

  it('usage errors exit 2', async () => {
    const r = await runCli(['process', photo]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('-o');
  });
});

describe('bgrm helpers', () => {
  it('doctor reports ONNX Runtime, providers and ffmpeg', async () => {
    const r = await runCli(['doctor', '--json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout.toString());
    expect(d.native.loaded).toBe(true);
    expect(d.native.onnxruntime).toMatch(/^1\.\d+/);
    expect(d.native.providers).toContain('CPUExecutionProvider');
    expect(d.models.find((m: { name: string }) => m.name === 'u2netp').installed).toBe(true);
  });

  it('models list --json shows the default model installed', async () => {
    const r = await runCli(['models', 'list', '--json']);
    expect(r.code).toBe(0);
    const names = JSON.parse(r.stdout.toString()).models.filter((m: { installed: boolean }) => m.installed).map((m: { name: string }) => m.name);
    expect(names).toContain('u2netp');
  });

  it('models list marks an int8 model made by an earlier quantiser recipe or from too few frames, and says how to make it again', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-list-'));
    try {
      // the int8 file is only listed (stat and record), never run here
      await fs.writeFile(path.join(tmp, 'u2netp-int8.onnx'), 'int8');
      const record = { calibration: { frames: 3, source: 'one.mp4', hash: 'x' }, quantizerVersion: 1 };
      await fs.writeFile(path.join(tmp, 'u2netp-int8.onnx.json'), JSON.stringify(record));
      const r = await runCli(['models', 'list'], { env: { BGRM_MODELS_DIR: tmp } });
      expect(r.code).toBe(0);
      const out = r.stdout.toString();
      expect(out).toContain('calibrated on 3 frames of one.mp4');
      expect(out).toMatch(/earlier recipe \(1; now \d+\), still used; bgrm models quantize u2netp --calibration DIR\|VIDEO --force/);
      expect(out).toContain('too few calibration frames: --fast does not use it');
      const json = JSON.parse((await runCli(['models', 'list', '--json'], { env: { BGRM_MODELS_DIR: tmp } })).stdout.toString());
      expect(json.quantized).toEqual([expect.objectContaining({ name: 'u2netp-int8', quantizerVersion: 1 })]);
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });

  it('--fast says when its int8 model was made by a recipe that runs on whole frames only, and how to make it again', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-recipe-'));
    try {
      await fs.symlink(modelPath('u2netp'), path.join(tmp, 'u2netp.onnx'));
      // stands in for an int8 model of recipe 5 (fixed input size): it runs, whole frames only
      await fs.symlink(modelPath('u2netp'), path.join(tmp, 'u2netp-int8.onnx'));
      const record = { calibration: { frames: 30, source: 'clip.mp4', hash: 'x' }, quantizerVersion: 5 };
      await fs.writeFile(path.join(tmp, 'u2netp-int8.onnx.json'), JSON.stringify(record));
      const r = await runCli(['process', photo, '-o', path.join(tmp, 'out.png'), '--fast', '--json'], { env: { BGRM_MODELS_DIR: tmp } });
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout.toString())).toMatchObject({ model: 'u2netp-int8', succeeded: 1 });
      expect(r.stderr).toContain('u2netp-int8 was made by quantiser recipe 5, which runs on whole frames only');
      expect(r.stderr).toContain('bgrm models quantize u2netp --calibration DIR|VIDEO --force');
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  });

  it('models pull with a wrong local file fails verification', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-pull-'));
    await fs.writeFile(path.join(tmp, 'fake.onnx'), 'fake');
    const r = await runCli(['models', 'pull', 'u2netp', '--from', path.join(tmp, 'fake.onnx')], { env: { BGRM_MODELS_DIR: tmp } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_CHECKSUM');
    await fs.rm(tmp, { recursive: true, force: true });
  });
});
