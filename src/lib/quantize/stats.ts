// Activation statistics for the quantiser: every planned tensor's per-channel extremes and a
// histogram over the calibration frames (ONNX Runtime runs the float graph), and the ranges and
// outlier channels read from them.
import { cloneModel, encodeModel, floatValueInfo, graphOf, type Model } from '../onnx-graph';
import type { CalibrationSet } from './calibration';
import { ort } from './ort';
import { BINS, type GraphPlan, type ModelInputSpec } from './plan';

export interface TensorStats {
  min: number;
  max: number;
  /** histogram bounds */
  histLo: number;
  histHi: number;
  channelMin: Float64Array;
  channelMax: Float64Array;
  channels: number;
  hist?: Float64Array;
  count: number;
}

/**
 * The share of values left out at each end of an activation's range. 0: the whole range. The
 * 99.999th percentile (1e-5), recipe 3's, clipped the largest activations: u2net's int8 masks
 * lost 0.004 IoU more against the ground truth than with the whole range (every 8th frame of davis
 * and davis-fast), and u2netp's 0.003.
 */
export const RANGE_TAIL = 0;
const OUTLIER_FLAT = 0.9; // channel min >= 0.9 x channel max: nearly constant
const OUTLIER_LARGE = 4; // channel max >= 4 x the median channel max of its tensor

async function calibrationSession(model: Model, tensors: string[]) {
  const m = cloneModel(model);
  // Only the tensors to measure are outputs (asking ONNX Runtime for a subset of outputs by name is
  // not reliable in onnxruntime-node 1.23).
  graphOf(m).output = tensors.map(floatValueInfo);
  // Fixed thread count: the statistics (and so the file) must not depend on the machine's cores.
  return ort().InferenceSession.create(encodeModel(m), {
    graphOptimizationLevel: 'basic',
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
}

/** Frames whose ranges set the histogram bounds (then every frame fills the histograms). */
const RANGE_FRAMES = 8;
/** Histogram bounds reach this share of the first frames' span beyond it. */
const RANGE_MARGIN = 0.5;

function channelExtremes(data: Float32Array, channels: number, onChannel: (c: number, lo: number, hi: number) => void): void {
  const plane = data.length / channels;
  for (let c = 0; c < channels; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    const end = (c + 1) * plane;
    for (let i = c * plane; i < end; i++) {
      const x = data[i];
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    onChannel(c, lo, hi);
  }
}

/**
 * Statistics in one pass over the frames after a short one: the first frames give provisional
 * ranges, widened by a margin, as histogram bounds; then every frame adds to the histograms (values
 * beyond the bounds count in the edge bins) and to the exact per-tensor and per-channel extremes.
 */
export async function collectStats(model: Model, plan: GraphPlan, calib: CalibrationSet, input: ModelInputSpec, log?: (m: string) => void) {
  const { Tensor } = ort();
  const session = await calibrationSession(model, plan.calibrated);
  const inputName = graphOf(model).input[0].name;
  const stats = new Map<string, TensorStats>();
  const run = async (t: Float32Array) => {
    const out = await session.run({ [inputName]: new Tensor('float32', t, [1, 3, input.height, input.width]) });
    for (const name of plan.calibrated) if (!out[name]) throw new Error(`calibration run returned no tensor ${name}`);
    return out;
  };
  try {
    const first = calib.tensors.slice(0, RANGE_FRAMES);
    for (const t of first) {
      const out = await run(t);
      for (const name of plan.calibrated) {
        const v = out[name];
        const channels = v.dims.length >= 2 ? v.dims[1] : 1;
        let s = stats.get(name);
        if (!s) {
          s = { min: Infinity, max: -Infinity, histLo: 0, histHi: 0, channelMin: new Float64Array(channels).fill(Infinity), channelMax: new Float64Array(channels).fill(-Infinity), channels, count: 0 };
          stats.set(name, s);
        }
        const st = s;
        channelExtremes(v.data as Float32Array, channels, (_c, lo, hi) => {
          st.histLo = Math.min(st.histLo, lo);
          st.histHi = Math.max(st.histHi, hi);
        });
      }
    }
    for (const s of stats.values()) {
      const span = s.histHi - s.histLo;
      if (s.histLo < 0) s.histLo -= RANGE_MARGIN * span;
      s.histHi += RANGE_MARGIN * span;
      if (!(s.histHi > s.histLo)) s.histHi = s.histLo + 1;
      s.hist = new Float64Array(BINS);
    }
    for (let f = 0; f < calib.tensors.length; f++) {
      const out = await run(calib.tensors[f]);
      for (const name of plan.calibrated) {
        const s = stats.get(name)!;
        const data = out[name].data as Float32Array;
        channelExtremes(data, s.channels, (c, lo, hi) => {
          if (lo < s.channelMin[c]) s.channelMin[c] = lo;
          if (hi > s.channelMax[c]) s.channelMax[c] = hi;
          if (lo < s.min) s.min = lo;
          if (hi > s.max) s.max = hi;
        });
        const k = BINS / (s.histHi - s.histLo);
        const lo = s.histLo;
        const hist = s.hist!;
        for (let i = 0; i < data.length; i++) {
          let b = Math.floor((data[i] - lo) * k);
          if (b >= BINS) b = BINS - 1;
          else if (b < 0) b = 0;
          hist[b]++;
        }
        s.count += data.length;
      }
      if (log && (f + 1) % 10 === 0) log(`calibration: ${f + 1}/${calib.tensors.length} frames`);
    }
  } finally {
    await session.release();
  }
  return stats;
}

/** An activation's range without `tailShare` of its values at each end (default: the whole range); an edge bin's share falls back to the exact extreme. */
export function percentileRange(s: TensorStats, tailShare = RANGE_TAIL): [number, number] {
  const hist = s.hist!;
  const width = (s.histHi - s.histLo) / BINS;
  const tail = s.count * tailShare;
  let acc = 0;
  let lo = s.min;
  for (let b = 0; b < BINS; b++) {
    acc += hist[b];
    if (acc > tail) {
      lo = b === 0 ? s.min : s.histLo + b * width;
      break;
    }
  }
  acc = 0;
  let hi = s.max;
  for (let b = BINS - 1; b >= 0; b--) {
    acc += hist[b];
    if (acc > tail) {
      hi = b === BINS - 1 ? s.max : s.histLo + (b + 1) * width;
      break;
    }
  }
  return [Math.min(lo, 0), Math.max(hi, 0)];
}

export function outlierChannels(s: TensorStats): number[] {
  if (s.channels < 4) return [];
  const maxima = Array.from(s.channelMax).sort((a, b) => a - b);
  const median = maxima[Math.floor(maxima.length / 2)];
  const out: number[] = [];
  for (let c = 0; c < s.channels; c++) {
    const hi = s.channelMax[c];
    if (hi > 0 && median > 0 && s.channelMin[c] >= OUTLIER_FLAT * hi && hi >= OUTLIER_LARGE * median) out.push(c);
  }
  return out;
}
