// The native codecs on real and damaged bytes: errors carry stable codes, PNG round-trips exactly;
// libvips is loaded only when a format needs it.
import { execFile } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { native, projectRoot } from '../../src/lib/native';
import { FileSink } from '../../src/lib/sinks/files';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

describe('PNG encode/decode', () => {
  it.each([1, 3, 4])('round-trips %i-channel pixels losslessly at every level', async (channels) => {
    const w = 37;
    const h = 23;
    const px = Buffer.alloc(w * h * channels);
    for (let i = 0; i < px.length; i++) px[i] = (i * 7919) % 256;
    for (const level of [0, 1, 6]) {
      const png = await native().encodePng(px, w, h, channels, level, 'sub');
      const back = await native().decode(png, { channels: 4 });
      expect([back.width, back.height]).toEqual([w, h]);
      for (let i = 0; i < w * h; i++) {
        const expected = channels === 1 ? [px[i], px[i], px[i], 255] : channels === 3 ? [...px.subarray(i * 3, i * 3 + 3), 255] : [...px.subarray(i * 4, i * 4 + 4)];
        expect([...back.data.subarray(i * 4, i * 4 + 4)]).toEqual(expected);
      }
    }
  });

  it('rejects a buffer whose size does not match', async () => {
    expect(() => native().encodePng(Buffer.alloc(10), 4, 4, 3, 1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });
});

describe('release: a result freed once a sink is done with it', () => {
  it('frees a Buffer that is the whole of its memory, and leaves a slice alone', async () => {
    const png = await native().encodePng(Buffer.alloc(8 * 8 * 4, 200), 8, 8, 4, 1);
    const decoded = await native().decode(png, { channels: 4 });
    expect(decoded.data.length).toBe(256);
    expect(native().release(decoded.data)).toBe(true);
    expect(decoded.data.length).toBe(0);
    expect(native().release(decoded.data)).toBe(false); // already free

    const whole = Buffer.alloc(1 << 16, 7);
    const slice = whole.subarray(10, 20);
    expect(native().release(slice)).toBe(false);
    expect([slice.length, slice[0], whole.length]).toEqual([10, 7, 1 << 16]);
  });

  it('FileSink writes the bytes, then frees them', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-release-'));
    try {
      const png = await native().encodePng(Buffer.alloc(4 * 4 * 4, 99), 4, 4, 4, 1);
      const copy = Buffer.from(png);
      const sink = new FileSink({ folder: dir });
      const frame = { name: 'f', origin: 'f', cameraId: 'c', frameNumber: 0, timestampMs: 0, bytes: Buffer.alloc(0) };
      const timings = { decodeMs: 0, resizeMs: 0, queueMs: 0, inferMs: 0, matteMs: 0, encodeMs: 0, totalMs: 0 };
      await sink.write({ frame, result: { data: png, width: 4, height: 4, channels: 4, modelRuns: 1, regionRuns: 0, timings } });
      expect(png.length).toBe(0);
      expect(readFileSync(path.join(dir, 'f.png')).equals(copy)).toBe(true);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('decode errors', () => {
  it('names an unknown format, and the formats it reads', async () => {
    const err = native().decode(Buffer.from('hello, this is not an image'));
    await expect(err).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED_FORMAT' });
    await expect(err).rejects.toThrow(/JPEG, PNG, WebP, TIFF, BMP, GIF, HEIF\/HEIC and AVIF/);
  });
  it('names the format of a damaged file it recognises', async () => {
    await expect(native().decode(Buffer.from('GIF89a\x10\x00\x10\x00 broken', 'latin1'))).rejects.toMatchObject({ code: 'ERR_DECODE', message: expect.stringMatching(/GIF/) });
    await expect(native().decode(Buffer.from('RIFF\x20\x00\x00\x00WEBPVP8 broken', 'latin1'))).rejects.toMatchObject({ code: 'ERR_DECODE', message: expect.stringMatching(/WebP/) });
  });
  it('recognises formats by their first bytes', () => {
    const n = native();
    expect(n.imageFormat(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).toBe('JPEG');
    expect(n.imageFormat(Buffer.from('RIFF\x00\x00\x00\x00WEBPVP8L', 'latin1'))).toBe('WebP');
    expect(n.imageFormat(Buffer.from('II*\x00\x08\x00\x00\x00', 'latin1'))).toBe('TIFF');
    expect(n.imageFormat(Buffer.from('\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic', 'latin1'))).toBe('HEIF/AVIF');
    expect(n.imageFormat(Buffer.from('\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2', 'latin1'))).toBeNull(); // an MP4
    expect(n.imageFormat(Buffer.from('BM'))).toBeNull(); // too short to be a bitmap
  });
  it('names empty input', async () => {
    await expect(native().decode(Buffer.alloc(0))).rejects.toMatchObject({ code: 'ERR_DECODE' });
  });
  it('rejects a corrupt PNG', async () => {
    const png = await native().encodePng(Buffer.alloc(16 * 16 * 3, 100), 16, 16, 3, 1);
    png[40] ^= 0xff; // inside IDAT: CRC mismatch
    await expect(native().decode(png)).rejects.toMatchObject({ code: 'ERR_DECODE' });
  });
  it('refuses an image over the pixel limit before decoding it', async () => {
    const png = await native().encodePng(Buffer.alloc(100 * 100 * 3), 100, 100, 3, 1);
    await expect(native().decode(png, { maxPixels: 5000 })).rejects.toMatchObject({ code: 'ERR_IMAGE_TOO_LARGE' });
  });
});

describeWith('../shared/testdata/rembg', hasTestdata('rembg'))('JPEG decode of real photos', () => {
  const jpg = readFileSync(path.join(testdata, 'rembg', 'car-1.jpg'));
  it('decodes to RGB of the right size', async () => {
    const im = await native().decode(jpg);
    expect([im.width, im.height, im.channels]).toEqual([480, 360, 3]);
    expect(im.data.length).toBe(480 * 360 * 3);
  });
  it('rejects a truncated JPEG instead of filling it grey', async () => {
    await expect(native().decode(jpg.subarray(0, Math.floor(jpg.length / 2)))).rejects.toMatchObject({ code: 'ERR_DECODE' });
  });
  it('rejects a JPEG with a damaged header', async () => {
    const bad = Buffer.from(jpg);
    bad.fill(0, 3, 200); // keep the FF D8 FF signature, wipe the segments after it
    await expect(native().decode(bad)).rejects.toMatchObject({ code: 'ERR_DECODE' });
  });
});

describe("glibc's mmap threshold, fixed when the core loads", () => {
  it('1 MiB by default; BGRM_MMAP_THRESHOLD sets another or (0) leaves glibc its own; MALLOC_MMAP_THRESHOLD_ wins', async () => {
    const addon = path.join(projectRoot, 'build', 'Release', 'bgrm.node');
    const threshold = async (env: NodeJS.ProcessEnv) => {
      const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/MMAP_THRESHOLD/.test(k)));
      const { stdout } = await promisify(execFile)(process.execPath, ['-e', `console.log(require(${JSON.stringify(addon)}).mmapThreshold)`], { env: { ...clean, ...env } });
      return Number(stdout.trim());
    };
    expect(await threshold({})).toBe(1 << 20);
    expect(await threshold({ BGRM_MMAP_THRESHOLD: '4194304' })).toBe(4 << 20);
    expect(await threshold({ BGRM_MMAP_THRESHOLD: '0' })).toBe(0);
    expect(await threshold({ BGRM_MMAP_THRESHOLD: '1e6' })).toBe(1 << 20); // not a number of bytes: the default
    expect(await threshold({ BGRM_MMAP_THRESHOLD: String(1 << 30) })).toBe(32 << 20); // glibc's largest
    expect(await threshold({ MALLOC_MMAP_THRESHOLD_: '262144' })).toBe(0);
  });
});

describe('libvips, loaded on first use', () => {
  it('a process that reads JPEG and PNG never loads it; the first format beyond them (or its version) does', async () => {
    // a fresh process: this one may have loaded it already
    const addon = path.join(projectRoot, 'build', 'Release', 'bgrm.node');
    const script = `
      const n = require(${JSON.stringify(addon)});
      const loaded = () => require('node:fs').readFileSync('/proc/self/maps', 'utf8').includes('libvips');
      (async () => {
        const r = { start: loaded(), onnxruntime: n.versions().onnxruntime };
        const png = await n.encodePng(Buffer.alloc(16 * 16 * 3, 90), 16, 16, 3, 6);
        const jpg = await n.encodeJpeg(Buffer.alloc(16 * 16 * 3, 90), 16, 16, 90);
        await n.decode(png, { channels: 3 });
        await n.decode(jpg, { channels: 3 });
        r.afterJpegPng = loaded();
        r.images = n.versions().images;
        r.afterImages = loaded();
        console.log(JSON.stringify(r));
      })();`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script]);
    const r = JSON.parse(stdout);
    expect(r).toMatchObject({ start: false, afterJpegPng: false, afterImages: true });
    expect(r.onnxruntime).toMatch(/^\d+\.\d+/);
    expect(r.images).toMatch(/^libvips \d+\.\d+/);
  });

  it('an addon without it beside: JPEG still decodes; a WebP gets an error naming the missing file and the way out', async () => {
    const release = path.join(projectRoot, 'build', 'Release');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-novips-'));
    try {
      await fs.copyFile(path.join(release, 'bgrm.node'), path.join(dir, 'bgrm.node'));
      await fs.symlink(path.join(release, 'libonnxruntime.so.1'), path.join(dir, 'libonnxruntime.so.1'));
      const script = `
        const n = require(${JSON.stringify(path.join(dir, 'bgrm.node'))});
        (async () => {
          const jpg = await n.encodeJpeg(Buffer.alloc(16 * 16 * 3, 90), 16, 16, 90);
          const r = { jpeg: (await n.decode(jpg, { channels: 3 })).width, images: n.versions().images };
          const webp = Buffer.concat([Buffer.from('RIFF\\0\\0\\0\\0WEBPVP8 ', 'latin1'), Buffer.alloc(64)]);
          try { await n.decode(webp); } catch (e) { r.code = e.code; r.message = e.message; }
          console.log(JSON.stringify(r));
        })();`;
      const r = JSON.parse((await promisify(execFile)(process.execPath, ['-e', script])).stdout);
      expect(r.jpeg).toBe(16);
      expect(r.code).toBe('ERR_DECODE');
      expect(r.message).toContain(path.join(dir, 'libbgrm_vips.so'));
      expect(r.message).toContain('npm run build:native');
      expect(r.images).toMatch(/^unavailable: cannot load/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
