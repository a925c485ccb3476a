// The event loop stays free while frames are processed, and memory does not grow with frame count.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runPipeline } from '../../src/lib/pipeline';
import { openSegmenter, type OpenSegmenter } from '../../src/lib/segmenter';
import { FileSink } from '../../src/lib/sinks/files';
import { FileSource, listImageInputs } from '../../src/lib/sources/files';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

describeWith('../shared/testdata/davis', hasTestdata('davis'))('runtime behaviour (real model, real frames)', () => {
  let open: OpenSegmenter;
  let out: string;
  beforeAll(async () => {
    open = await openSegmenter({ model: 'u2netp', threads: 2 });
    out = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-rt-'));
  });
  afterAll(async () => {
    open?.segmenter.close();
    await fs.rm(out, { recursive: true, force: true });
  });

  it('event loop p99 delay < 20 ms while 50 frames go through the pipeline', async () => {
    const { entries } = await listImageInputs([path.join(testdata, 'davis', 'dance-twirl')]);
    const jpgs = entries.filter((e) => e.file.endsWith('.jpg')).slice(0, 50);
    expect(jpgs).toHaveLength(50);
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    const summary = await runPipeline({
      source: new FileSource(jpgs),
      sink: new FileSink({ folder: out }),
      segmenter: open.segmenter,
      processOptions: { output: 'rgba', encoding: 'png', pngLevel: 1 },
      concurrency: 3,
    });
    h.disable();
    const p99 = h.percentile(99) / 1e6;
    // eslint-disable-next-line no-console
    console.log(`event loop delay over ${summary.succeeded} frames: p50 ${(h.percentile(50) / 1e6).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms`);
    expect(summary.succeeded).toBe(50);
    expect(p99).toBeLessThan(20);
  });

  it(
    'RSS after frame 2,000 is within 10% of RSS after frame 200',
    async () => {
      const dirs = ['blackswan', 'breakdance', 'dog', 'kite-surf'].map((d) => path.join(testdata, 'davis', d));
      const files: Buffer[] = [];
      for (const d of dirs) {
        for (const f of (await fs.readdir(d)).filter((n) => n.endsWith('.jpg')).sort().slice(0, 25)) files.push(await fs.readFile(path.join(d, f)));
      }
      const gc = (globalThis as { gc?: () => void }).gc;
      let rss200 = 0;
      let done = 0;
      const inFlight = new Set<Promise<void>>();
      for (let i = 0; i < 2000; i++) {
        const p = open.segmenter
          .process(files[i % files.length], { output: 'rgba', encoding: 'png', pngLevel: 1 })
          .then((r) => {
            expect(r.data.length).toBeGreaterThan(1000);
            done++;
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= 3) await Promise.race(inFlight);
        if (done >= 200 && rss200 === 0) {
          gc?.();
          rss200 = process.memoryUsage().rss;
        }
      }
      await Promise.all(inFlight);
      gc?.();
      const rss2000 = process.memoryUsage().rss;
      // eslint-disable-next-line no-console
      console.log(`RSS after 200 frames ${(rss200 / 2 ** 20).toFixed(1)} MiB, after ${done}: ${(rss2000 / 2 ** 20).toFixed(1)} MiB (${((rss2000 / rss200 - 1) * 100).toFixed(1)}%)`);
      expect(done).toBe(2000);
      expect(rss2000).toBeLessThanOrEqual(rss200 * 1.1);
    },
    40 * 60 * 1000,
  );
});
