// npm run bench:formats: what each image format costs. Decode: DAVIS frames (854x480) written in
// every input format by libvips's command line, decoded by bgrm (milliseconds per frame, one
// thread), and JPEG and PNG also through libvips, the comparison that keeps their fast paths.
// Encode: the cut-outs of the same frames as PNG (level 1), WebP lossless, WebP at quality 85 and
// JPEG on white: bytes and the encode stage's milliseconds, from the native pipeline's own timings.
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { native, projectRoot, type Encoding } from '../lib/native';
import { openSegmenter } from '../lib/segmenter';
import { arg } from './common';

const run = promisify(execFile);

const FORMATS: { name: string; ext: string; options?: string }[] = [
  { name: 'JPEG', ext: 'jpg', options: '[Q=90]' },
  { name: 'PNG', ext: 'png' },
  { name: 'WebP lossy', ext: 'webp', options: '[Q=85]' },
  { name: 'WebP lossless', ext: 'webp', options: '[lossless]' },
  { name: 'TIFF', ext: 'tif' },
  { name: 'BMP', ext: 'bmp' },
  { name: 'GIF', ext: 'gif' },
  { name: 'HEIC', ext: 'heic' },
  { name: 'AVIF', ext: 'avif' },
];

async function meanMs(files: Buffer[], reps: number, via?: 'libvips'): Promise<number> {
  await native().decode(files[0], via ? { via } : {}); // warm
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) for (const f of files) await native().decode(f, via ? { via } : {});
  return (performance.now() - t0) / (reps * files.length);
}

async function main(): Promise<void> {
  const testdata = path.resolve(arg('testdata', path.join(projectRoot, '..', 'shared', 'testdata')));
  const seq = path.join(testdata, 'davis', 'dance-twirl');
  if (!existsSync(seq)) throw new Error(`no DAVIS frames under ${testdata} (pass --testdata DIR)`);
  const frames = Number(arg('frames', '8'));
  const reps = Number(arg('reps', '3'));
  const names = (await fs.readdir(seq)).filter((f) => f.endsWith('.jpg')).sort().slice(0, frames);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-bench-formats-'));
  try {
    console.log(`bench:formats: ${names.length} DAVIS frames (854x480) x ${reps}, decode on one thread, ${os.availableParallelism()} cores`);
    console.log(`${'input'.padEnd(15)} ${'KiB'.padStart(7)} ${'bgrm ms'.padStart(8)} ${'libvips ms'.padStart(11)}  path`);
    for (const f of FORMATS) {
      const files: Buffer[] = [];
      try {
        for (const n of names) {
          const out = path.join(tmp, `${path.parse(n).name}.${f.ext}`);
          await run('vips', ['copy', path.join(seq, n), `${out}${f.options ?? ''}`]);
          files.push(await fs.readFile(out));
        }
      } catch (err) {
        console.log(`${f.name.padEnd(15)} (vips cannot write it here: ${(err as Error).message.split('\n')[0]})`);
        continue;
      }
      const kib = files.reduce((n, b) => n + b.length, 0) / files.length / 1024;
      const ms = await meanMs(files, reps);
      const fast = f.ext === 'jpg' || f.ext === 'png';
      const viaVips = fast ? await meanMs(files, reps, 'libvips') : ms;
      console.log(
        `${f.name.padEnd(15)} ${kib.toFixed(0).padStart(7)} ${ms.toFixed(2).padStart(8)} ${viaVips.toFixed(2).padStart(11)}  ${fast ? `fast path, x${(viaVips / ms).toFixed(2)} faster than libvips` : 'libvips'}`,
      );
    }
    const { segmenter } = await openSegmenter({ model: 'u2netp', device: 'cpu', cpuThreads: 1 });
    try {
      const jpgs = await Promise.all(names.map((n) => fs.readFile(path.join(seq, n))));
      console.log(`${'output'.padEnd(22)} ${'KiB'.padStart(7)} ${'encode ms'.padStart(10)}`);
      const outputs: { label: string; encoding: Encoding; quality?: number; color?: [number, number, number] }[] = [
        { label: 'PNG (level 1)', encoding: 'png' },
        { label: 'WebP lossless', encoding: 'webp' },
        { label: 'WebP quality 85', encoding: 'webp', quality: 85 },
        { label: 'JPEG 90, on white', encoding: 'jpeg', quality: 90, color: [255, 255, 255] },
      ];
      for (const o of outputs) {
        let bytes = 0;
        let encodeMs = 0;
        for (const jpg of jpgs) {
          const r = await segmenter.process(jpg, { output: 'rgba', encoding: o.encoding, quality: o.quality, color: o.color, pngLevel: 1 });
          bytes += r.data.length;
          encodeMs += r.timings.encodeMs;
        }
        console.log(`${o.label.padEnd(22)} ${(bytes / jpgs.length / 1024).toFixed(0).padStart(7)} ${(encodeMs / jpgs.length).toFixed(2).padStart(10)}`);
      }
    } finally {
      segmenter.close();
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench:formats failed: ${(err as Error).message}`);
  process.exit(1);
});
