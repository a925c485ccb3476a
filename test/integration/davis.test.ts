// Quality on real footage: mean IoU per DAVIS sequence must not fall below floors set from a
// reference run of this faithful (rembg-identical) pipeline, minus 0.03.
import * as path from 'node:path';
import { scoreSequence } from '../../src/lib/quality';
import { openSegmenter, type OpenSegmenter } from '../../src/lib/segmenter';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

// Reference (u2netp, every 5th frame, 2 threads): blackswan 0.935, breakdance 0.656, car-shadow 0.934,
// dance-twirl 0.602, dog 0.874, horsejump-high 0.498, kite-surf 0.583; mean 0.726.
const FLOORS: Record<string, number> = {
  blackswan: 0.9,
  breakdance: 0.62,
  'car-shadow': 0.9,
  'dance-twirl': 0.57,
  dog: 0.84,
  'horsejump-high': 0.46,
  'kite-surf': 0.55,
};

describeWith('../shared/testdata/davis', hasTestdata('davis'))('DAVIS IoU floors (u2netp)', () => {
  let open: OpenSegmenter;
  const ious: number[] = [];
  beforeAll(async () => {
    open = await openSegmenter({ model: 'u2netp', threads: 2 });
  });
  afterAll(() => open?.segmenter.close());

  it.each(Object.entries(FLOORS))('%s: mean IoU >= %f', async (sequence, floor) => {
    const s = await scoreSequence(open.segmenter, path.join(testdata, 'davis', sequence), { step: 5 });
    // eslint-disable-next-line no-console
    console.log(`${sequence}: ${s.frames} frames, IoU ${s.iou.toFixed(3)}, MAE ${s.mae.toFixed(4)}`);
    ious.push(s.iou);
    expect(s.frames).toBeGreaterThan(5);
    expect(s.iou).toBeGreaterThanOrEqual(floor);
  });

  it('mean IoU over the sequences >= 0.70', () => {
    expect(ious).toHaveLength(Object.keys(FLOORS).length);
    expect(ious.reduce((a, b) => a + b, 0) / ious.length).toBeGreaterThanOrEqual(0.7);
  });
});
