// The quantiser's arithmetic on synthetic statistics: zero points, percentile ranges, outlier channels.
import { BINS, outlierChannels, percentileRange, uint8Params, type TensorStats } from '../../src/lib/quantize';

const lowest = (xs: number[]) => xs.reduce((a, b) => Math.min(a, b), Infinity);
const highest = (xs: number[]) => xs.reduce((a, b) => Math.max(a, b), -Infinity);

function stats(values: number[], channels = 1, histLo = Math.min(0, lowest(values)), histHi = Math.max(0, highest(values))): TensorStats {
  const hist = new Float64Array(BINS);
  const k = BINS / (histHi - histLo);
  for (const v of values) hist[Math.max(0, Math.min(BINS - 1, Math.floor((v - histLo) * k)))]++;
  return {
    min: lowest(values),
    max: highest(values),
    histLo,
    histHi,
    hist,
    count: values.length,
    channels,
    channelMin: new Float64Array(channels),
    channelMax: new Float64Array(channels),
  };
}

describe('uint8 parameters', () => {
  it('a ReLU range [0, hi] has zero point 0, so ONNX Runtime can fold the Relu away', () => {
    expect(uint8Params(0, 6)).toEqual({ scale: Math.fround(6 / 255), zeroPoint: 0 });
  });
  it('a range across zero puts zero exactly on an integer', () => {
    const q = uint8Params(-2, 6);
    expect(q.zeroPoint).toBe(64);
    expect(Math.abs(q.zeroPoint * q.scale - 2)).toBeLessThan(q.scale);
  });
  it('an empty range still gives a usable scale', () => {
    expect(uint8Params(0, 0).scale).toBe(1);
  });
});

describe('percentile ranges', () => {
  it('with a tail share, ignores a few extreme values (beyond the 99.999th percentile) but keeps the bulk', () => {
    const values = Array.from({ length: 1_000_000 }, (_, i) => (i % 1000) / 100); // 0..9.99
    values[0] = 500; // one wild value
    const [lo, hi] = percentileRange(stats(values), 1e-5);
    expect(lo).toBe(0);
    expect(hi).toBeGreaterThan(9.9);
    expect(hi).toBeLessThan(11);
  });
  it("the recipe's default keeps the whole range, the wild value included", () => {
    const values = Array.from({ length: 100_000 }, (_, i) => (i % 1000) / 100);
    values[0] = 500;
    const [lo, hi] = percentileRange(stats(values));
    expect(lo).toBe(0);
    expect(hi).toBeGreaterThan(499);
  });
  it('values beyond the histogram bounds (edge bins) fall back to the exact extremes', () => {
    const values = Array.from({ length: 1000 }, (_, i) => i / 100); // 0..9.99, histogram bounds 0..5
    const [, hi] = percentileRange(stats(values, 1, 0, 5));
    expect(hi).toBeCloseTo(9.99, 5);
  });
});

describe('outlier channels', () => {
  it('finds a nearly constant channel far above the others', () => {
    const s = stats([0, 1], 8);
    s.channelMin.set([0, 0, 0, 0, 0, 0, 226, 0]);
    s.channelMax.set([3, 4, 2, 5, 3, 4, 228, 6]);
    expect(outlierChannels(s)).toEqual([6]);
  });
  it('a large channel that varies, or a constant small one, is not an outlier', () => {
    const s = stats([0, 1], 8);
    s.channelMin.set([0, 0, 0, 0, 0, 0, 0, 2]);
    s.channelMax.set([3, 4, 2, 5, 3, 4, 228, 2.1]);
    expect(outlierChannels(s)).toEqual([]);
  });
});
