// The QDQ rewrite: a float graph plus calibration statistics become the int8 graph (opset 13,
// QuantizeLinear/DequantizeLinear pairs ONNX Runtime fuses into QLinearConv and QLinearAdd).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BgrmError, errorMessage } from '../errors';
import { oneChannelForms, splitConcatConvs } from '../model-lean';
import { writeFileAtomic } from '../paths';
import {
  attribute,
  cloneModel,
  DataType,
  decodeModel,
  defaultOpset,
  dims,
  encodeModel,
  floatValues,
  graphOf,
  intAttribute,
  makeNode,
  makeTensor,
  type Graph,
  type Model,
  type Node,
  type Tensor,
} from '../onnx-graph';
import type { CalibrationSet } from './calibration';
import { dataInputs, planGraph, QUANTIZER_VERSION, RANGE_KEEPING, type GraphPlan, type ModelInputSpec } from './plan';
import { fitOutputShift, shiftOutputBias } from './bias';
import { freeInputSize } from './free-size';
import { collectStats, outlierChannels, percentileRange, type TensorStats } from './stats';

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
  /** The output's logit shift (bias.ts) and how well the int8 masks agree with the float ones before and after it. */
  outputCorrection: { shift: number; before: number; after: number };
  /** The model runs at any height and width that are multiples of 32 (free-size.ts). */
  freeInputSize: boolean;
  /** One-channel Convs (the side outputs, float) each run as three nodes (model-lean.ts splitNarrowConvs). */
  narrowConvs: number;
  /** 1x1 Convs from one channel to one (the side outputs' fusion, float) run as Mul and Add (model-lean.ts scalarConvs). */
  scalarConvs: number;
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
    const q = uint8Params(lo, hi);
    // A Resize whose output parameters equal its input's loses its Q/DQ pair in ONNX Runtime and
    // runs as a uint8 Resize, about twice as slow as the float one (u2netp's two largest
    // upsamplings: 48 ms, then 24 ms, of a 235 ms single-thread run in an ONNX Runtime profile). A
    // scale one part in 10^4 larger keeps it float at no cost in accuracy.
    const from = p?.opType === 'Resize' ? params.get(p.input[0]) : undefined;
    if (from && from.scale === q.scale && from.zeroPoint === q.zeroPoint) q.scale = Math.fround(q.scale * (1 + 1e-4));
    params.set(t, q);
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
      // Weights go int8 only where ONNX Runtime will run the Conv in int8: its input and its output
      // (or the Relu's after it) quantised. The head and the Convs writing an outlier tensor run in
      // float, and keep their float weights.
      if (xq && w && writesQuantized(n, params, plan.consumers)) {
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

/** Whether a Conv's output is quantised, itself or through the Relu that reads it (see planGraph). */
function writesQuantized(n: Node, params: Map<string, QParams>, consumers: Map<string, Node[]>): boolean {
  const o = n.output[0];
  if (params.has(o)) return true;
  const cs = consumers.get(o) ?? [];
  return cs.length > 0 && cs.every((c) => c.opType === 'Relu' && params.has(c.output[0]));
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
  const correction = await fitOutputShift(encodeModel(model), encodeModel(q), calib, input);
  if (correction.shift !== 0 && !shiftOutputBias(q, correction.shift)) correction.shift = 0;
  log?.(`output bias correction: logit ${correction.shift >= 0 ? '+' : ''}${correction.shift}, masks agree with the float model's ${correction.before.toFixed(4)} -> ${correction.after.toFixed(4)} (IoU, calibration frames)`);
  const freeResizes = await freeInputSize(q);
  // The one-channel side outputs and their fusion stay float (their outputs are not quantised): in
  // the forms ONNX Runtime runs fastest and holds least (see model-lean.ts).
  const { narrowConvs, scalarConvs } = oneChannelForms(q);
  q.producerName = 'bgrm-quantize';
  q.producerVersion = String(QUANTIZER_VERSION);
  q.docString = `int8 QDQ of ${path.basename(source)}; calibration sha256 ${calib.hash} over ${calib.tensors.length} frames`;
  const out = encodeModel(q);
  await writeFileAtomic(output, out);
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
    outputCorrection: correction,
    freeInputSize: freeResizes > 0,
    narrowConvs,
    scalarConvs,
    quantizerVersion: QUANTIZER_VERSION,
  };
}
