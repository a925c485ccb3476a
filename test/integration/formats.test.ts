// Every image a user has: each format made at test time by libvips's own command line (vips),
// decoded by bgrm and compared with a reference decode; EXIF orientation; folders with links, loops
// and files that are not images; PNG, WebP and JPEG out, through the CLI with the real model.
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { native, type RawImage } from '../../src/lib/native';
import { alphaOf, greyOf, iou, meanAbsError } from '../../src/lib/quality';
import { runCli } from '../helpers/cli';
import { describeWith, hasTestdata, modelPath, testdata } from '../helpers/testdata';

const run = promisify(execFile);
const hasVips = (() => {
  try {
    require('node:child_process').execFileSync('vips', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A test picture: smooth gradients, hard edges and some noise, so that every codec has work. */
function picture(width: number, height: number, channels: 3 | 4): Buffer {
  const px = Buffer.alloc(width * height * channels);
  let seed = 7;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const o = (y * width + x) * channels;
      const inBox = x > width / 4 && x < (3 * width) / 4 && y > height / 3 && y < (2 * height) / 3;
      px[o] = inBox ? 230 : Math.round((255 * x) / width);
      px[o + 1] = inBox ? 40 : Math.round((255 * y) / height);
      px[o + 2] = (x + y + (seed % 9)) & 0xff;
      if (channels === 4) px[o + 3] = inBox ? 255 : Math.round((255 * x) / width);
    }
  }
  return px;
}

function diff(a: RawImage, b: RawImage): { mean: number; max: number } {
  expect([a.width, a.height, a.channels]).toEqual([b.width, b.height, b.channels]);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / a.data.length, max };
}

/** The bytes with an EXIF block (APP1) whose orientation tag is `orientation`, after SOI. */
function withOrientation(jpeg: Buffer, orientation: number, littleEndian: boolean): Buffer {
  const tiff = Buffer.alloc(26);
  const u16 = (v: number, at: number) => (littleEndian ? tiff.writeUInt16LE(v, at) : tiff.writeUInt16BE(v, at));
  const u32 = (v: number, at: number) => (littleEndian ? tiff.writeUInt32LE(v, at) : tiff.writeUInt32BE(v, at));
  tiff.write(littleEndian ? 'II' : 'MM', 0, 'latin1');
  u16(42, 2);
  u32(8, 4); // IFD0
  u16(1, 8); // one entry
  u16(0x0112, 10); // Orientation
  u16(3, 12); // SHORT
  u32(1, 14);
  u16(orientation, 18);
  u32(0, 22); // no next IFD
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const head = Buffer.from([0xff, 0xe1, 0, 0]);
  head.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), head, body, jpeg.subarray(2)]);
}

describeWith('the vips command line (libvips-tools) and the u2netp model', hasVips && existsSync(modelPath('u2netp')))('image formats', () => {
  let tmp: string;
  let srcPng: string;
  let src: RawImage;
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-formats-'));
    const [w, h] = [96, 64];
    src = { data: picture(w, h, 3), width: w, height: h, channels: 3 };
    srcPng = path.join(tmp, 'src.png');
    await fs.writeFile(srcPng, await native().encodePng(src.data, w, h, 3, 6));
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  /** `vips ARGS`; false (and a warning) when this libvips cannot write that format. */
  async function vips(args: string[]): Promise<boolean> {
    try {
      await run('vips', args);
      return true;
    } catch (err) {
      // eslint-disable-next-line no-console
      console.warn(`SKIPPED a case: vips ${args.join(' ')} failed here: ${(err as Error).message.split('\n')[0]}`);
      return false;
    }
  }
  const decodeFile = async (file: string, channels: 3 | 4 = 3) => native().decode(await fs.readFile(file), { channels });

  it.each([
    // [case, file, how vips makes it from the source PNG, largest difference from the reference decode]
    ['WebP lossless', 'x.webp', (s: string, o: string) => ['copy', s, `${o}[lossless]`], 0],
    ['WebP lossy', 'x.webp', (s: string, o: string) => ['copy', s, `${o}[Q=80]`], 2],
    ['TIFF', 'x.tif', (s: string, o: string) => ['copy', s, o], 0],
    ['TIFF, 16 bits', 'x16.tif', (s: string, o: string) => ['cast', s, o, 'ushort', '--shift'], 1],
    ['BMP', 'x.bmp', (s: string, o: string) => ['copy', s, o], 0],
    ['GIF', 'x.gif', (s: string, o: string) => ['copy', s, o], 0],
    ['HEIC', 'x.heic', (s: string, o: string) => ['copy', s, o], 2],
    ['AVIF', 'x.avif', (s: string, o: string) => ['copy', s, o], 2],
    ['JPEG, CMYK', 'cmyk.jpg', (s: string, o: string) => ['icc_export', s, o, '--output-profile', 'cmyk'], 1],
    ['JPEG, grey', 'grey.jpg', (s: string, o: string) => ['colourspace', s, o, 'b-w'], 1],
  ])('%s decodes to the pixels of the reference decoder', async (_name, file, make, tolerance) => {
    const out = path.join(tmp, file);
    if (!(await vips(make(srcPng, out)))) return;
    // the reference: libvips's own decode of the same file to 8-bit sRGB (through its embedded
    // profile where it has one), written losslessly
    const ref = path.join(tmp, `${file}.ref.png`);
    const toSrgb = file === 'cmyk.jpg' ? ['icc_transform', out, ref, 'srgb', '--embedded', '--intent', 'relative'] : ['colourspace', out, ref, 'srgb'];
    expect(await vips(toSrgb)).toBe(true);
    const [ours, theirs] = [await decodeFile(out), await decodeFile(ref)];
    expect(diff(ours, theirs).max).toBeLessThanOrEqual(tolerance);
    // and the picture is the source's (lossy formats within their loss; CMYK's gamut is smaller
    // than sRGB's, grey has no colour)
    expect(diff(ours, src).mean).toBeLessThan(file === 'grey.jpg' ? 60 : file === 'cmyk.jpg' ? 25 : 12);
  });

  it('reads a 16-bit PNG (made by ffmpeg) to the 8-bit picture', async () => {
    const file = path.join(tmp, 'x16.png');
    await run('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', srcPng, '-pix_fmt', 'rgb48be', file]);
    expect((await fs.readFile(file))[24]).toBe(16); // IHDR bit depth
    expect(diff(await decodeFile(file), src).max).toBeLessThanOrEqual(1);
  });

  it('converts an embedded colour profile (Display P3, PNG and JPEG) to sRGB', async () => {
    for (const file of ['p3.png', 'p3.jpg']) {
      const tagged = path.join(tmp, file);
      if (!(await vips(['icc_export', srcPng, tagged, '--output-profile', 'p3']))) continue;
      // the same pixel values without the profile: what a reader that ignores it would show
      const untagged = path.join(tmp, `untagged-${file}`);
      expect(await vips(['copy', tagged, `${untagged}[strip]`])).toBe(true);
      const [converted, ignored] = [diff(await decodeFile(tagged), src).mean, diff(await decodeFile(untagged), src).mean];
      // measured: PNG 3.8 against 11.0 unconverted, JPEG 6.1 (its own loss too) against 12.3
      expect(converted).toBeLessThan(ignored / 1.8);
    }
  });

  it('keeps the alpha of a WebP with transparency', async () => {
    const rgba = picture(src.width, src.height, 4);
    const png = path.join(tmp, 'alpha.png');
    await fs.writeFile(png, await native().encodePng(rgba, src.width, src.height, 4, 6));
    const webp = path.join(tmp, 'alpha.webp');
    expect(await vips(['copy', png, `${webp}[lossless]`])).toBe(true);
    const decoded = await decodeFile(webp, 4);
    // lossless WebP keeps alpha exactly, and the colour wherever something shows (libwebp may
    // rewrite the colour under alpha 0)
    for (let i = 0; i < rgba.length; i += 4) {
      expect(decoded.data[i + 3]).toBe(rgba[i + 3]);
      if (rgba[i + 3] > 0) expect([...decoded.data.subarray(i, i + 3)]).toEqual([...rgba.subarray(i, i + 3)]);
    }
  });

  it('applies each EXIF orientation (1-8, both byte orders) as libvips autorot does', async () => {
    const jpeg = await native().encodeJpeg(src.data, src.width, src.height, 95);
    for (let o = 1; o <= 8; o++) {
      for (const le of [true, false]) {
        const file = path.join(tmp, `o${o}${le ? 'le' : 'be'}.jpg`);
        await fs.writeFile(file, withOrientation(jpeg, o, le));
        const ours = await decodeFile(file);
        expect([ours.width, ours.height]).toEqual(o >= 5 ? [src.height, src.width] : [src.width, src.height]);
        const ref = path.join(tmp, `o${o}.ref.png`);
        expect(await vips(['autorot', file, ref])).toBe(true);
        expect(diff(ours, await decodeFile(ref)).max).toBeLessThanOrEqual(1);
      }
    }
  });

  it('a folder: every image by content, links followed, a loop taken once, other files listed with a code; WebP out', async () => {
    const dir = path.join(tmp, 'photos');
    const elsewhere = path.join(tmp, 'elsewhere');
    await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
    await fs.mkdir(elsewhere, { recursive: true });
    expect(await vips(['copy', srcPng, path.join(dir, 'a.webp')])).toBe(true);
    expect(await vips(['copy', srcPng, path.join(dir, 'b.tif')])).toBe(true);
    expect(await vips(['copy', srcPng, path.join(elsewhere, 'linked.gif')])).toBe(true);
    await fs.writeFile(path.join(dir, 'sub', 'portrait.jpg'), withOrientation(await native().encodeJpeg(src.data, src.width, src.height, 90), 6, true));
    await fs.copyFile(srcPng, path.join(dir, 'no-extension')); // recognised by its content
    await fs.writeFile(path.join(dir, 'notes.txt'), 'not an image');
    await fs.symlink(path.join(elsewhere, 'linked.gif'), path.join(dir, 'file-link.gif'));
    await fs.symlink(elsewhere, path.join(dir, 'folder-link'));
    await fs.symlink('..', path.join(dir, 'sub', 'loop')); // back to photos/: taken once
    await fs.symlink(path.join(tmp, 'nothing-here'), path.join(dir, 'broken'));
    const out = path.join(tmp, 'cut');
    const r = await runCli(['process', dir, '-o', out, '--output-format', 'webp', '--model', 'u2netp', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout.toString());
    expect(s).toMatchObject({ frames: 6, succeeded: 6, failed: 0 });
    expect(s.ignoredFiles.map((f: { file: string; code: string }) => [path.basename(f.file), f.code]).sort()).toEqual([
      ['broken', 'ERR_BROKEN_LINK'],
      ['notes.txt', 'ERR_UNSUPPORTED_FORMAT'],
    ]);
    expect(r.stderr).toMatch(/not taken: .*notes\.txt/);
    const written = (await fs.readdir(out, { recursive: true })).filter((f) => f.endsWith('.webp')).sort();
    expect(written).toEqual(['a.webp', 'b.webp', 'file-link.webp', 'folder-link/linked.webp', 'no-extension.webp', 'sub/portrait.webp']);
    // the portrait comes out upright (EXIF 6: 90 degrees), with its alpha
    const portrait = await native().decode(await fs.readFile(path.join(out, 'sub', 'portrait.webp')), { channels: 4 });
    expect([portrait.width, portrait.height]).toEqual([src.height, src.width]);
  }, 120000);

  it('JPEG out needs a background; the format follows -o; a quality is for WebP and JPEG', async () => {
    const transparent = await runCli(['process', srcPng, '-o', path.join(tmp, 'cut.jpg'), '--model', 'u2netp']);
    expect(transparent.code).toBe(2);
    expect(transparent.stderr).toMatch(/JPEG has no alpha channel/);
    expect(transparent.stderr).toMatch(/--background/);
    const onWhite = path.join(tmp, 'white.jpg');
    expect((await runCli(['process', srcPng, '-o', onWhite, '--background', 'white', '--model', 'u2netp'])).code).toBe(0);
    const jpeg = await fs.readFile(onWhite);
    expect([...jpeg.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    expect((await native().decode(jpeg)).width).toBe(src.width);
    const lossless = path.join(tmp, 'cut.webp');
    expect((await runCli(['process', srcPng, '-o', lossless, '--model', 'u2netp'])).code).toBe(0);
    const png = path.join(tmp, 'cut.png');
    expect((await runCli(['process', srcPng, '-o', png, '--model', 'u2netp'])).code).toBe(0);
    expect((await alphaOf(await fs.readFile(lossless))).data.equals((await alphaOf(await fs.readFile(png))).data)).toBe(true);
    const mismatch = await runCli(['process', srcPng, '-o', png, '--output-format', 'webp', '--model', 'u2netp']);
    expect([mismatch.code, /names a PNG file/.test(mismatch.stderr)]).toEqual([2, true]);
    const pngQuality = await runCli(['process', srcPng, '-o', png, '--output-quality', '80', '--model', 'u2netp']);
    expect([pngQuality.code, /--output-quality applies to WebP/.test(pngQuality.stderr)]).toEqual([2, true]);
  }, 120000);

  it('hundreds of damaged files per format (fixed seed): a named error or a picture, never a crash; huge sizes refused', async () => {
    const small = path.join(tmp, 'small.png');
    await fs.writeFile(small, await native().encodePng(picture(48, 32, 3), 48, 32, 3, 6));
    let seed = 20261202;
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const outcomes: Record<string, number> = {};
    for (const [file, options] of [['f.webp', '[Q=80]'], ['l.webp', '[lossless]'], ['f.tif', ''], ['f.bmp', ''], ['f.gif', ''], ['f.heic', ''], ['f.avif', '']]) {
      const made = path.join(tmp, file);
      if (!(await vips(['copy', small, `${made}${options}`]))) continue;
      const good = await fs.readFile(made);
      for (let i = 0; i < 200; i++) {
        let bad: Buffer;
        if (i % 3 === 0) bad = good.subarray(0, Math.floor(random() * good.length)); // truncated
        else {
          bad = Buffer.from(good); // bits flipped: in the header (every other case) or anywhere
          const span = i % 3 === 1 ? Math.min(64, bad.length) : bad.length;
          for (let k = 1 + Math.floor(random() * 8); k > 0; k--) bad[Math.floor(random() * span)] ^= 1 << Math.floor(random() * 8);
        }
        const outcome = await native().decode(bad).then(
          (im) => (im.width > 0 && im.height > 0 && im.width * im.height <= 64 * 2 ** 20 ? 'decoded' : 'absurd'),
          (err: { code: string; message: string }) => (err.message ? err.code : 'no message'),
        );
        outcomes[`${file} ${outcome}`] = (outcomes[`${file} ${outcome}`] ?? 0) + 1;
        expect(['decoded', 'ERR_DECODE', 'ERR_UNSUPPORTED_FORMAT', 'ERR_IMAGE_TOO_LARGE']).toContain(outcome);
      }
    }
    // eslint-disable-next-line no-console
    console.log(`damaged files: ${JSON.stringify(outcomes)}`);
    // a bitmap that declares 100000x100000 is refused from its header, before any decoder reads it
    const bmp = Buffer.from(await fs.readFile(path.join(tmp, 'f.bmp')));
    bmp.writeInt32LE(100000, 18);
    bmp.writeInt32LE(-100000, 22);
    await expect(native().decode(bmp)).rejects.toMatchObject({ code: 'ERR_IMAGE_TOO_LARGE' });
    // through the CLI: the damaged files are named, the good ones still written, exit 1
    const dir = path.join(tmp, 'mixed');
    await fs.mkdir(dir, { recursive: true });
    await fs.copyFile(path.join(tmp, 'f.tif'), path.join(dir, 'good.tif'));
    const webp = await fs.readFile(path.join(tmp, 'l.webp'));
    await fs.writeFile(path.join(dir, 'cut.webp'), webp.subarray(0, webp.length >> 1));
    await fs.writeFile(path.join(dir, 'huge.bmp'), bmp);
    const out = path.join(tmp, 'mixed-out');
    const r = await runCli(['process', dir, '-o', out, '--model', 'u2netp', '--json']);
    expect(r.code).toBe(1);
    const s = JSON.parse(r.stdout.toString());
    expect(s).toMatchObject({ frames: 3, succeeded: 1, failed: 2 });
    expect(s.failures.map((f: { origin: string; code: string }) => [path.basename(f.origin), f.code])).toEqual([
      ['cut.webp', 'ERR_DECODE'],
      ['huge.bmp', 'ERR_IMAGE_TOO_LARGE'],
    ]);
    expect(existsSync(path.join(out, 'good.png'))).toBe(true);
  }, 120000);

  (hasTestdata('rembg') ? it : it.skip)('EXIF orientations 1-8 give the mask of the pre-rotated photo; WebP out is smaller than PNG on the rembg photos', async () => {
    const rembg = path.join(testdata, 'rembg');
    const photo = await fs.readFile(path.join(rembg, 'car-1.jpg'));
    const oriented = path.join(tmp, 'oriented');
    const prerotated = path.join(tmp, 'prerotated');
    await fs.mkdir(oriented, { recursive: true });
    await fs.mkdir(prerotated, { recursive: true });
    for (let o = 1; o <= 8; o++) {
      await fs.writeFile(path.join(oriented, `o${o}.jpg`), withOrientation(photo, o, o % 2 === 0));
      expect(await vips(['autorot', path.join(oriented, `o${o}.jpg`), path.join(prerotated, `o${o}.png`)])).toBe(true);
    }
    const [outA, outB] = [path.join(tmp, 'masks-oriented'), path.join(tmp, 'masks-prerotated')];
    expect((await runCli(['process', oriented, '-o', outA, '--format', 'mask', '--model', 'u2netp'])).code).toBe(0);
    expect((await runCli(['process', prerotated, '-o', outB, '--format', 'mask', '--model', 'u2netp'])).code).toBe(0);
    const upright = await native().decode(photo);
    for (let o = 1; o <= 8; o++) {
      const [a, b] = [await greyOf(await fs.readFile(path.join(outA, `o${o}.png`))), await greyOf(await fs.readFile(path.join(outB, `o${o}.png`)))];
      expect([a.width, a.height]).toEqual(o >= 5 ? [upright.height, upright.width] : [upright.width, upright.height]);
      expect([b.width, b.height]).toEqual([a.width, a.height]);
      expect(iou(a.data, b.data)).toBeGreaterThan(0.995);
      expect(meanAbsError(a.data, b.data)).toBeLessThan(0.002);
    }
    // WebP (lossless) against PNG (default level) on the rembg photos: the same alpha, fewer bytes
    const photos = (await fs.readdir(rembg)).filter((f) => f.endsWith('.jpg'));
    const [pngDir, webpDir] = [path.join(tmp, 'rembg-png'), path.join(tmp, 'rembg-webp')];
    expect((await runCli(['process', ...photos.map((p) => path.join(rembg, p)), '-o', pngDir, '--model', 'u2netp'])).code).toBe(0);
    expect((await runCli(['process', ...photos.map((p) => path.join(rembg, p)), '-o', webpDir, '--output-format', 'webp', '--model', 'u2netp'])).code).toBe(0);
    let [pngBytes, webpBytes] = [0, 0];
    for (const p of photos) {
      const name = path.parse(p).name;
      const [png, webp] = [await fs.readFile(path.join(pngDir, `${name}.png`)), await fs.readFile(path.join(webpDir, `${name}.webp`))];
      pngBytes += png.length;
      webpBytes += webp.length;
      expect((await alphaOf(webp)).data.equals((await alphaOf(png)).data)).toBe(true);
    }
    // eslint-disable-next-line no-console
    console.log(`rembg photos: WebP lossless ${webpBytes} bytes, PNG ${pngBytes} bytes, ratio ${(webpBytes / pngBytes).toFixed(3)}`);
    expect(webpBytes).toBeLessThan(pngBytes);
  }, 180000);
});
