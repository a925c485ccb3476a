// Parity with rembg: bgrm's alpha on rembg's own test photos, against rembg's published cut-outs.
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { openSegmenter, type OpenSegmenter } from '../../src/lib/segmenter';
import { alphaOf, meanAbsError } from '../../src/lib/quality';
import { describeWith, hasTestdata, modelPath, testdata } from '../helpers/testdata';

const photos = ['car-1', 'anime-girl-1', 'cloth-1', 'plants-1'];

for (const model of ['u2netp', 'u2net']) {
  const present = hasTestdata('rembg') && existsSync(modelPath(model));
  describeWith(`../shared/testdata/rembg or models/${model}.onnx`, present)(`alpha parity with rembg (${model})`, () => {
    let open: OpenSegmenter;
    beforeAll(async () => {
      open = await openSegmenter({ model, threads: 2 });
    });
    afterAll(() => open?.segmenter.close());

    it.each(photos)('%s: mean absolute alpha error <= 0.005', async (photo) => {
      const jpg = await fs.readFile(path.join(testdata, 'rembg', `${photo}.jpg`));
      const ours = await open.segmenter.process(jpg, { output: 'rgba', encoding: 'png' });
      const [a, ref] = await Promise.all([alphaOf(ours.data), fs.readFile(path.join(testdata, 'rembg', `${photo}.${model}.png`)).then(alphaOf)]);
      expect([a.width, a.height]).toEqual([ref.width, ref.height]);
      const mae = meanAbsError(a.data, ref.data);
      // eslint-disable-next-line no-console
      console.log(`${model} ${photo}: alpha MAE vs rembg ${mae.toFixed(5)}`);
      expect(mae).toBeLessThanOrEqual(0.005);
      // and the mask is a real segmentation, neither empty nor full
      const fg = a.data.reduce((n, v) => n + (v >= 128 ? 1 : 0), 0) / a.data.length;
      expect(fg).toBeGreaterThan(0.02);
      expect(fg).toBeLessThan(0.98);
    });
  });
}
