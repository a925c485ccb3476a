// Static int8 quantisation of U-2-Net models into a QDQ ONNX graph that ONNX Runtime fuses into
// QLinearConv.
//
// The recipe:
// - the graph is the lean one (model-lean.ts): each Conv(Concat(a, b)) is Conv(a) + Conv(b), so
//   the two Convs quantise their own outputs and the Add runs as QLinearAdd;
// - activations are uint8, per tensor, asymmetric. Their ranges are the 0.001st and 99.999th
//   percentiles of a histogram over the calibration frames;
// - weights are int8, per output channel, symmetric; biases are int32 with scale input × weight;
// - QuantizeLinear/DequantizeLinear pairs go on the model input and on the outputs of Relu (the
//   Relu then folds away, because its Q has zero point 0), MaxPool, Resize, Concat and Add. Conv
//   and Add outputs that feed a Relu are left to the Relu. MaxPool's output shares its input's
//   parameters (it runs in uint8); Resize's output is calibrated on its own, so ONNX Runtime keeps
//   Resize in float: its uint8 bilinear Resize (and the layout transposes around it) is slower here;
// - the 1-channel head (side outputs, their upsampling, the fusion Conv, Sigmoid) stays float;
// - outlier channels stay float. u2netp has channels that are nearly constant and far larger than
//   the rest of their tensor, so one uint8 scale would crush every other channel. A tensor holding
//   such a channel keeps float, and so do the Convs that read it (weights included);
// - the opset goes from 11 to 13 (per-channel DequantizeLinear needs `axis`), and Unsqueeze's axes
//   move from an attribute to an input as opset 13 requires.
// Same model + same calibration frames + same quantiser version → byte-identical output.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BgrmError, errorMessage } from './errors';
import { collectStderr, ffmpegMissing, probeVideo, spawnFfmpeg, waitForExit } from './ffmpeg';
import { splitConcatConvs } from './model-lean';
import { native } from './native';
import { IMAGE_EXTENSIONS, isVideoPath } from './paths';
import {
  attribute,
  DataType,
  decodeModel,
  defaultOpset,
  dims,
  encodeModel,
  floatValueInfo,
  floatValues,
  intAttribute,
  makeNode,
  makeTensor,
  Graph,
  graphOf,
  Model,
  Node,
  Tensor,
  opCounts,
  cloneModel,
} from './onnx-graph';

export const QUANTIZER_VERSION = 3; // 2: Resize in float; 3: the lean graph (model-lean.ts)
export const DEFAULT_CALIBRATION_FRAMES = 40;
/**
 * Fewer calibration frames than this give ranges fitted to a few pictures (one photo, a two-second
 * clip): such a model is made only when asked for by name (--min-frames), never silently.
 */
export const MIN_CALIBRATION_FRAMES = 16;
export const BINS = 2048;
const TAIL = 1e-5; // 99.999th percentile
const OUTLIER_FLAT = 0.9; // channel min >= 0.9 x channel max: nearly constant
const OUTLIER_LARGE = 4; // channel max >= 4 x the median channel max of its tensor

export interface ModelInputSpec {
  width: number;
  height: number;
  mean: number[];
  std: number[];
}

/** Ops whose float outputs are activations (feature maps) when their data input is one. */
const ACTIVATION_OPS = new Set(['Conv', 'Relu', 'MaxPool', 'Resize', 'Add', 'Concat', 'Sigmoid']);
/** Ops whose output keeps its input's range, so it shares the input's quantisation. (Resize keeps
 * it too, but sharing would let ONNX Runtime run it in uint8, about 12% slower for the whole model.) */
const RANGE_KEEPING = new Set(['MaxPool']);

interface GraphPlan {
  /** Activation tensors in graph order. */
  activations: string[];
  producer: Map<string, Node>;
  consumers: Map<string, Node[]>;
  /** Tensors calibrated (candidates for their own quantisation parameters). */
  calibrated: string[];
}

function dataInputs(n: Node): string[] {
  if (n.opType === 'Resize' || n.opType === 'Conv') return [n.input[0]];
  return n.input.filter((x) => x !== '');
}

function planGraph(model: Model): GraphPlan {
  const g = graphOf(model);
  const producer = new Map<string, Node>();
  const consumers = new Map<string, Node[]>();
  for (const n of g.node) {
    for (const o of n.output) producer.set(o, n);
    for (const i of n.input) {
      if (!consumers.has(i)) consumers.set(i, []);
      consumers.get(i)!.push(n);
    }
  }
  const isActivation = new Set<string>(g.input.filter((i) => i.type?.tensorType?.elemType === DataType.FLOAT).map((i) => i.name!));
  const initializers = new Set(g.initializer.map((t) => t.name!));
  for (const name of initializers) isActivation.delete(name);
  const activations = [...isActivation];
  for (const n of g.node) {
    if (!ACTIVATION_OPS.has(n.opType!)) continue;
    const ins = dataInputs(n);
    if (ins.length > 0 && ins.every((i) => isActivation.has(i))) {
      for (const o of n.output) {
        isActivation.add(o);
        activations.push(o);
      }
    }
  }
  // A Conv output read only by a Relu gets its range from the Relu's output instead.
  const calibrated = activations.filter((t) => {
    const p = producer.get(t);
    if (p && RANGE_KEEPING.has(p.opType!)) return false;
    if (p?.opType === 'Sigmoid') return false;
    const cs = consumers.get(t) ?? [];
    if ((p?.opType === 'Conv' || p?.opType === 'Add') && cs.length > 0 && cs.every((c) => c.opType === 'Relu')) return false;
    return true;
  });
  return { activations, producer, consumers, calibrated };
}

// ---------------------------------------------------------------------------------------------
// Calibration frames

export interface CalibrationSet {
  /** Model input tensors, one per frame. */
  tensors: Float32Array[];
  /** sha256 over the tensors: identifies the calibration data. */
  hash: string;
  source: string;
}

async function listImages(dir: string): Promise<string[]> {
  const names = (await fs.readdir(dir)).filter((f) => IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase())).sort();
  return names.map((f) => path.join(dir, f));
}

function evenlySpaced<T>(items: T[], count: number): T[] {
  if (items.length <= count) return items;
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(items[Math.floor((i * items.length) / count)]);
  return out;
}

/** Extracts frames 0, step, 2·step, … (at most count) of a video as lossless PNG files. */
async function extractVideoFrames(video: string, count: number, step: number, dir: string): Promise<string[]> {
  const child = spawnFfmpeg('ffmpeg', [
    '-nostdin', '-loglevel', 'error', '-i', video,
    '-vf', `select=not(mod(n\\,${step}))`, '-fps_mode', 'vfr', '-frames:v', String(count),
    path.join(dir, '%05d.png'),
  ]);
  child.on('error', () => undefined);
  const tail = collectStderr(child);
  try {
    await waitForExit(child, 'ffmpeg (calibration frames)', tail);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw ffmpegMissing();
    throw err;
  }
  return listImages(dir);
}

/**
 * Reads calibration frames from a folder of images (evenly spaced, at most `count`), a single
 * image, or a video (its first frames, every `step`-th), as the exact tensors the pipeline feeds.
 */
export async function loadCalibration(source: string, input: ModelInputSpec, count = DEFAULT_CALIBRATION_FRAMES, step = 3): Promise<CalibrationSet> {
  const st = await fs.stat(source).catch(() => undefined);
  if (!st) throw new BgrmError('ERR_CALIBRATION', `calibration source not found: ${source}. Pass a folder of images or a video with --calibration`);
  let files: string[];
  let tmp: string | undefined;
  if (st.isDirectory()) {
    files = evenlySpaced(await listImages(source), count);
  } else if (isVideoPath(source)) {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-calib-'));
    // a short clip is sampled more densely, so that it still gives enough frames
    const frames = (await probeVideo(source).catch(() => undefined))?.frames;
    const videoStep = frames ? Math.max(1, Math.min(step, Math.floor(frames / MIN_CALIBRATION_FRAMES))) : step;
    files = await extractVideoFrames(source, count, videoStep, tmp);
  } else {
    files = [source];
  }
  try {
    if (files.length === 0) {
      throw new BgrmError('ERR_CALIBRATION', `no images (.jpg, .jpeg, .png) found in ${source} to calibrate on`);
    }
    const hash = createHash('sha256');
    const tensors: Float32Array[] = [];
    for (const file of files) {
      let t: Float32Array;
      try {
        t = await native().modelInput(await fs.readFile(file), input);
      } catch (err) {
        throw new BgrmError('ERR_CALIBRATION', `calibration frame ${file} cannot be used: ${errorMessage(err)}`);
      }
      hash.update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
      tensors.push(t);
    }
    return { tensors, hash: hash.digest('hex'), source };
  } finally {
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics

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

type OrtModule = typeof import('onnxruntime-node');

function ort(): OrtModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('onnxruntime-node') as OrtModule;
}

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
async function collectStats(model: Model, plan: GraphPlan, calib: CalibrationSet, input: ModelInputSpec, log?: (m: string) => void) {
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

/** The 0.001st and 99.999th percentiles (an edge bin's share falls back to the exact extreme). */
export function percentileRange(s: TensorStats): [number, number] {
  const hist = s.hist!;
  const width = (s.histHi - s.histLo) / BINS;
  const tail = s.count * TAIL;
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

// ---------------------------------------------------------------------------------------------
// Rewriting

interface QParams {
  scale: number;
  zeroPoint: number;
}

export function uint8Params(lo: number, hi: number): QParams {
  const scale = Math.fround((hi - lo) / 255) || 1;
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

/** Moves Unsqueeze's axes attribute to an input (opset 13) and declares opset 13. */
function upgradeToOpset13(model: Model): void {
  const g = graphOf(model);
  const from = defaultOpset(model);
  if (from >= 13) return;
  if (from < 11) throw new BgrmError('ERR_QUANTIZE', `the model uses opset ${from}; the quantiser needs opset 11 or later`);
  const unsupported = g.node.filter((n) => ['Squeeze', 'ReduceSum', 'Split'].includes(n.opType!));
  if (unsupported.length > 0) {
    throw new BgrmError('ERR_QUANTIZE', `cannot upgrade ${unsupported[0].opType} from opset ${from} to 13 yet`);
  }
  let k = 0;
  for (const n of g.node) {
    if (n.opType !== 'Unsqueeze') continue;
    const axes = attribute(n, 'axes');
    if (!axes) continue;
    const name = `bgrm_unsqueeze_axes_${k++}`;
    const values = BigInt64Array.from((axes.ints ?? []).map((v) => BigInt(String(v))));
    g.initializer.push(makeTensor(name, DataType.INT64, [values.length], values));
    n.input.push(name);
    n.attribute = n.attribute.filter((a) => a.name !== 'axes');
  }
  for (const o of model.opsetImport) if (!o.domain || o.domain === 'ai.onnx') o.version = 13;
}

export interface QuantizeReport {
  model: string;
  output: string;
  bytes: number;
  sourceBytes: number;
  calibration: { source: string; frames: number; hash: string };
  convs: number;
  int8Convs: number;
  floatConvs: number;
  quantizedTensors: number;
  outlierTensors: { tensor: string; channels: number[] }[];
  quantizerVersion: number;
}

/** Builds the QDQ model from a float model and calibration statistics. */
function rewrite(model: Model, plan: GraphPlan, stats: Map<string, TensorStats>) {
  const g = graphOf(model);
  const outputsOfGraph = new Set(g.output.map((o) => o.name!));

  // The float head: 1-channel Conv outputs and everything computed only from them.
  const head = new Set<string>();
  for (const t of plan.activations) {
    const p = plan.producer.get(t);
    if (!p) continue;
    const s = stats.get(t);
    if (p.opType === 'Conv' && s && s.channels === 1) head.add(t);
    else if (p.opType === 'Sigmoid' || (dataInputs(p).length > 0 && dataInputs(p).every((i) => head.has(i)))) head.add(t);
  }

  const outliers: { tensor: string; channels: number[] }[] = [];
  const params = new Map<string, QParams>();
  for (const t of plan.activations) {
    if (head.has(t) || outputsOfGraph.has(t)) continue;
    const p = plan.producer.get(t);
    if (p && RANGE_KEEPING.has(p.opType!)) {
      const from = params.get(p.input[0]);
      if (from) params.set(t, from);
      continue;
    }
    const s = stats.get(t);
    if (!s) continue;
    const odd = outlierChannels(s);
    if (odd.length > 0) {
      outliers.push({ tensor: t, channels: odd });
      continue;
    }
    const [lo, hi] = percentileRange(s);
    params.set(t, uint8Params(lo, hi));
  }

  // Quantisation parameter initializers and Q/DQ pairs.
  const nodes: Node[] = [];
  const renamed = new Map<string, string>();
  const dequantizedFrom = new Map<string, string>();
  const emitPair = (t: string) => {
    const q = params.get(t)!;
    const scale = `${t}_scale`;
    const zp = `${t}_zero_point`;
    g.initializer.push(makeTensor(scale, DataType.FLOAT, [], Float32Array.of(q.scale)));
    g.initializer.push(makeTensor(zp, DataType.UINT8, [], Uint8Array.of(q.zeroPoint)));
    nodes.push(makeNode('QuantizeLinear', [t, scale, zp], [`${t}_quantized`], `${t}_QuantizeLinear`));
    nodes.push(makeNode('DequantizeLinear', [`${t}_quantized`, scale, zp], [`${t}_dequantized`], `${t}_DequantizeLinear`));
    renamed.set(t, `${t}_dequantized`);
    dequantizedFrom.set(`${t}_dequantized`, t);
  };
  const initializers = new Map(g.initializer.map((t) => [t.name!, t]));
  let convs = 0;
  let int8Convs = 0;
  for (const t of g.input) if (params.has(t.name!)) emitPair(t.name!);
  for (const n of g.node) {
    // Shape-computing consumers keep reading the float tensor; feature consumers read the DQ output.
    if (n.opType !== 'Shape') n.input = n.input.map((i) => renamed.get(i) ?? i);
    if (n.opType === 'Conv') {
      convs++;
      const x = dequantizedFrom.get(n.input[0]);
      const xq = x ? params.get(x) : undefined;
      const w = initializers.get(n.input[1]);
      if (xq && w) {
        int8Convs++;
        quantizeConvWeights(n, w, xq, initializers, nodes, g);
      }
    }
    nodes.push(n);
    for (const o of n.output) if (params.has(o)) emitPair(o);
  }
  g.node = nodes;
  // Weights replaced by int8 copies are no longer read in float.
  const read = new Set(g.node.flatMap((n) => n.input));
  g.initializer = g.initializer.filter((t) => read.has(t.name!));
  return { convs, int8Convs, quantizedTensors: [...params.keys()].length, outliers };
}

function quantizeConvWeights(n: Node, w: Tensor, xq: QParams, initializers: Map<string, Tensor>, nodes: Node[], g: Graph) {
  const shape = dims(w);
  const outC = shape[0];
  const per = shape.slice(1).reduce((a, b) => a * b, 1);
  const values = floatValues(w);
  const q = new Int8Array(values.length);
  const scales = new Float32Array(outC);
  for (let c = 0; c < outC; c++) {
    let m = 0;
    for (let i = c * per; i < (c + 1) * per; i++) m = Math.max(m, Math.abs(values[i]));
    const s = Math.fround(m / 127) || 1;
    scales[c] = s;
    for (let i = c * per; i < (c + 1) * per; i++) q[i] = Math.max(-127, Math.min(127, Math.round(values[i] / s)));
  }
  const wName = w.name!;
  g.initializer.push(makeTensor(`${wName}_quantized`, DataType.INT8, shape, q));
  g.initializer.push(makeTensor(`${wName}_scale`, DataType.FLOAT, [outC], scales));
  g.initializer.push(makeTensor(`${wName}_zero_point`, DataType.INT8, [outC], new Int8Array(outC)));
  nodes.push(makeNode('DequantizeLinear', [`${wName}_quantized`, `${wName}_scale`, `${wName}_zero_point`], [`${wName}_dequantized`], `${wName}_DequantizeLinear`, [intAttribute('axis', 0)]));
  n.input[1] = `${wName}_dequantized`;
  const b = n.input[2] ? initializers.get(n.input[2]) : undefined;
  if (b) {
    const bias = floatValues(b);
    const bq = new Int32Array(outC);
    const bs = new Float32Array(outC);
    for (let c = 0; c < outC; c++) {
      bs[c] = Math.fround(xq.scale * scales[c]);
      bq[c] = Math.max(-2147483647, Math.min(2147483647, Math.round(bias[c] / bs[c])));
    }
    const bName = b.name!;
    g.initializer.push(makeTensor(`${bName}_quantized`, DataType.INT32, [outC], bq));
    g.initializer.push(makeTensor(`${bName}_scale`, DataType.FLOAT, [outC], bs));
    g.initializer.push(makeTensor(`${bName}_zero_point`, DataType.INT32, [outC], new Int32Array(outC)));
    nodes.push(makeNode('DequantizeLinear', [`${bName}_quantized`, `${bName}_scale`, `${bName}_zero_point`], [`${bName}_dequantized`], `${bName}_DequantizeLinear`, [intAttribute('axis', 0)]));
    n.input[2] = `${bName}_dequantized`;
  }
}

/**
 * Quantises `source` (a float U-2-Net ONNX file) with `calib` and writes `output`. Returns what it did.
 */
export async function quantizeModel(
  source: string,
  output: string,
  calib: CalibrationSet,
  input: ModelInputSpec,
  log?: (m: string) => void,
): Promise<QuantizeReport> {
  const bytes = await fs.readFile(source);
  let model: Model;
  try {
    model = decodeModel(bytes);
  } catch (err) {
    throw new BgrmError('ERR_QUANTIZE', `${source} is not a readable ONNX model: ${errorMessage(err)}`);
  }
  if (!model.graph || graphOf(model).input.length === 0) throw new BgrmError('ERR_QUANTIZE', `${source} has no graph input`);
  if (graphOf(model).node.some((n) => n.opType === 'QuantizeLinear' || n.opType === 'QLinearConv')) {
    throw new BgrmError('ERR_QUANTIZE', `${source} is already quantised`);
  }
  // The lean graph first: no concatenation held, in uint8 as in float (see model-lean.ts).
  splitConcatConvs(model);
  const plan = planGraph(model);
  const stats = await collectStats(model, plan, calib, input, log);
  const q = cloneModel(model);
  upgradeToOpset13(q);
  const r = rewrite(q, plan, stats);
  q.producerName = 'bgrm-quantize';
  q.producerVersion = String(QUANTIZER_VERSION);
  q.docString = `int8 QDQ of ${path.basename(source)}; calibration sha256 ${calib.hash} over ${calib.tensors.length} frames`;
  const out = encodeModel(q);
  const tmp = `${output}.partial-${process.pid}`;
  await fs.writeFile(tmp, out);
  await fs.rename(tmp, output);
  return {
    model: source,
    output,
    bytes: out.length,
    sourceBytes: bytes.length,
    calibration: { source: calib.source, frames: calib.tensors.length, hash: calib.hash },
    convs: r.convs,
    int8Convs: r.int8Convs,
    floatConvs: r.convs - r.int8Convs,
    quantizedTensors: r.quantizedTensors,
    outlierTensors: r.outliers,
    quantizerVersion: QUANTIZER_VERSION,
  };
}

export interface FusionReport {
  /** Op counts of the graph ONNX Runtime actually runs (graph optimisation level "all"). */
  ops: Record<string, number>;
  qlinearConv: number;
  floatConv: number;
}

/** Lets ONNX Runtime optimise a model as bgrm runs it and counts the op types it ends up with. */
export async function inspectFusion(modelFile: string, threads = 1): Promise<FusionReport> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-fusion-'));
  const optimized = path.join(tmp, 'optimized.onnx');
  try {
    const session = await ort().InferenceSession.create(modelFile, {
      graphOptimizationLevel: 'all',
      optimizedModelFilePath: optimized,
      intraOpNumThreads: threads,
      logSeverityLevel: 3, // the warning that the saved file is machine-specific: it is only counted
    });
    await session.release();
    const ops = opCounts(decodeModel(await fs.readFile(optimized)));
    const count = (pred: (k: string) => boolean) => Object.entries(ops).filter(([k]) => pred(k)).reduce((a, [, v]) => a + v, 0);
    return {
      ops,
      qlinearConv: count((k) => k.endsWith('QLinearConv')),
      floatConv: count((k) => k === 'Conv' || k.endsWith('.FusedConv') || k.endsWith('NchwcConv') || k.endsWith('.Conv')),
    };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Installed int8 models: NAME-int8.onnx beside NAME.onnx, with a record NAME-int8.onnx.json

export interface QuantizationRecord {
  name: string;
  from: string;
  fromSha256: string;
  calibration: { source: string; frames: number; hash: string };
  quantizerVersion: number;
  report: QuantizeReport;
  fusion?: FusionReport;
}

export async function readQuantizationRecord(modelFile: string): Promise<QuantizationRecord | undefined> {
  try {
    return JSON.parse(await fs.readFile(`${modelFile}.json`, 'utf8')) as QuantizationRecord;
  } catch {
    return undefined;
  }
}

export interface InstallQuantizedOptions {
  /** A folder of images, an image, or a video. */
  calibration: string;
  frames?: number;
  /** Refuse (ERR_CALIBRATION_TOO_SMALL) when the source gives fewer frames (default MIN_CALIBRATION_FRAMES). */
  minFrames?: number;
  force?: boolean;
  log?: (m: string) => void;
}

export interface InstallQuantizedResult extends QuantizationRecord {
  path: string;
  /** True when a model made from the same float model and the same calibration frames was already there. */
  upToDate: boolean;
  seconds: number;
}

/** Quantises the installed float model `name` into `name-int8` (see resolveModel). */
export async function installQuantized(name: string, opts: InstallQuantizedOptions): Promise<InstallQuantizedResult> {
  const started = process.hrtime.bigint();
  // Imported here: models.ts is the lighter module, and this keeps the dependency one way.
  const { resolveModel, hashFile, INT8_SUFFIX, int8ModelPath } = await import('./models');
  if (name.endsWith(INT8_SUFFIX)) name = name.slice(0, -INT8_SUFFIX.length);
  const base = await resolveModel(name);
  const target = int8ModelPath(base.name);
  opts.log?.(`calibration: reading up to ${opts.frames ?? DEFAULT_CALIBRATION_FRAMES} frames from ${opts.calibration}`);
  const calib = await loadCalibration(opts.calibration, base.input, opts.frames ?? DEFAULT_CALIBRATION_FRAMES);
  const minFrames = Math.min(opts.minFrames ?? MIN_CALIBRATION_FRAMES, opts.frames ?? Infinity);
  if (calib.tensors.length < minFrames) {
    throw new BgrmError(
      'ERR_CALIBRATION_TOO_SMALL',
      `${opts.calibration} gives ${calib.tensors.length} calibration frame${calib.tensors.length === 1 ? '' : 's'}; an int8 model needs at least ${minFrames} ` +
        `to fit its ranges to more than a few pictures. Calibrate on a folder of ${MIN_CALIBRATION_FRAMES}+ images or a video of ${MIN_CALIBRATION_FRAMES * 3}+ frames, ` +
        `or accept fewer with --min-frames ${calib.tensors.length} (not recommended)`,
    );
  }
  const fromSha256 = await hashFile(base.path, 'sha256');
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  const previous = await readQuantizationRecord(target);
  const exists = await fs.stat(target).then((s) => s.isFile(), () => false);
  if (!opts.force && exists && previous && previous.fromSha256 === fromSha256 && previous.calibration.hash === calib.hash && previous.quantizerVersion === QUANTIZER_VERSION) {
    return { ...previous, path: target, upToDate: true, seconds: seconds() };
  }
  if (calib.tensors.length < MIN_CALIBRATION_FRAMES) opts.log?.(`warning: ${calib.tensors.length} calibration frames, fewer than the ${MIN_CALIBRATION_FRAMES} --fast expects (asked for)`);
  opts.log?.(`quantising ${base.name} on ${calib.tensors.length} frames`);
  const report = await quantizeModel(base.path, target, calib, base.input, opts.log);
  report.calibration.source = path.resolve(opts.calibration);
  const fusion = await inspectFusion(target);
  const record: QuantizationRecord = {
    name: `${base.name}${INT8_SUFFIX}`,
    from: base.path,
    fromSha256,
    calibration: report.calibration,
    quantizerVersion: QUANTIZER_VERSION,
    report,
    fusion,
  };
  await fs.writeFile(`${target}.json`, `${JSON.stringify(record, null, 2)}\n`);
  return { ...record, path: target, upToDate: false, seconds: seconds() };
}

/** Why an installed int8 model is not used by --fast (calibrated on too few frames), or undefined. */
async function weakCalibration(modelFile: string): Promise<string | undefined> {
  const record = await readQuantizationRecord(modelFile);
  const frames = record?.calibration.frames;
  return frames !== undefined && frames < MIN_CALIBRATION_FRAMES ? `it was calibrated on ${frames} frame${frames === 1 ? '' : 's'} (fewer than ${MIN_CALIBRATION_FRAMES})` : undefined;
}

/**
 * The model `--fast` runs: NAME-int8 when it is installed and was calibrated on enough frames.
 * When it is missing (or weak) and the input is a local video or folder with enough frames, it is
 * made once, calibrated on that input, and kept for every later run. Otherwise (one photo, a short
 * clip, standard input, Kafka) the float model runs this time, and the message says how to make it.
 */
export async function fastModel(base: string, inputs: string[], log: (m: string) => void): Promise<string> {
  const { resolveModel, INT8_SUFFIX } = await import('./models');
  const name = base.endsWith(INT8_SUFFIX) ? base : `${base}${INT8_SUFFIX}`;
  const floatName = name.slice(0, -INT8_SUFFIX.length);
  const howTo = `make it once with: bgrm models quantize ${floatName} --calibration DIR|VIDEO (${MIN_CALIBRATION_FRAMES}+ frames of footage like yours)`;
  let weak: string | undefined;
  try {
    const installed = await resolveModel(name);
    weak = await weakCalibration(installed.path);
    if (!weak) return name;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODEL_NOT_INSTALLED') throw err;
  }
  const local = inputs.length > 0 && inputs[0] !== '-' ? inputs[0] : undefined;
  if (!local) {
    log(`--fast: ${name} ${weak ? `is not used: ${weak}` : 'is not made yet'}, so the float model runs; ${howTo}`);
    return floatName;
  }
  log(`--fast: ${weak ? `remaking ${name} (${weak})` : `making ${name} once`}, calibrated on ${local} (later runs reuse it)`);
  try {
    const r = await installQuantized(floatName, { calibration: local, force: !!weak });
    log(`--fast: ${name} ready in ${r.seconds.toFixed(1)} s: ${r.report.int8Convs} of ${r.report.convs} convs int8, ${r.calibration.frames} calibration frames -> ${r.path}`);
    return name;
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_CALIBRATION_TOO_SMALL') {
      log(`--fast: ${local} is too little to calibrate ${name} on (${errorMessage(err).split(';')[0]}), so the float model runs this time; ${howTo}`);
    } else {
      log(`--fast: could not make ${name} (${errorMessage(err)}); the float model runs`);
    }
    return floatName;
  }
}
