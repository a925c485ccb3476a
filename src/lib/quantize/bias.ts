// Output bias correction: the last stage of quantisation. int8 rounding shifts the model's final
// logit a little everywhere (on u2net it grew every mask: 2 to 10% more foreground than the float
// model's on the same frames), and a shift of the logit moves every edge. On the calibration
// frames the float and the int8 model both run; the shift δ that makes the int8 masks agree best
// with the float ones (mean IoU of the masks as bgrm makes them: min-max normalised, halved at
// 0.5) is added to the bias of the Conv that feeds the output's Sigmoid. δ = 0 when nothing helps.
import { DataType, dims, floatValues, graphOf, makeTensor, type Model, type Node } from '../onnx-graph';
import type { CalibrationSet } from './calibration';
import { ort } from './ort';
import type { ModelInputSpec } from './plan';

/** The first output of each calibration frame (d0, after its Sigmoid), from an encoded model. */
async function outputs(model: Uint8Array, calib: CalibrationSet, input: ModelInputSpec): Promise<Float32Array[]> {
  const { InferenceSession, Tensor } = ort();
  const session = await InferenceSession.create(model, { graphOptimizationLevel: 'all' });
  try {
    const out: Float32Array[] = [];
    for (const t of calib.tensors) {
      const r = await session.run({ [session.inputNames[0]]: new Tensor('float32', t, [1, 3, input.height, input.width]) });
      out.push(Float32Array.from(r[session.outputNames[0]].data as Float32Array));
    }
    return out;
  } finally {
    await session.release();
  }
}

/** A mask as bgrm makes it: the map min-max normalised, foreground where it reaches one half. */
function maskOf(p: Float32Array): Uint8Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of p) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const mid = lo + 0.5 * (hi - lo);
  const m = new Uint8Array(p.length);
  if (hi > lo) for (let i = 0; i < p.length; i++) m[i] = p[i] >= mid ? 1 : 0;
  return m;
}

function maskIou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i] & b[i];
    union += a[i] | b[i];
  }
  return union > 0 ? inter / union : 1;
}

/**
 * The logit shift that makes the int8 model's masks agree best with the float model's on the
 * calibration frames, and the agreement before and after. A coarse grid, then a fine one around the best.
 */
export async function fitOutputShift(floatModel: Uint8Array, int8Model: Uint8Array, calib: CalibrationSet, input: ModelInputSpec): Promise<{ shift: number; before: number; after: number }> {
  const reference = (await outputs(floatModel, calib, input)).map(maskOf);
  const logits = (await outputs(int8Model, calib, input)).map((p) => p.map((v) => {
    const c = Math.min(1 - 1e-7, Math.max(1e-7, v));
    return Math.log(c / (1 - c));
  }));
  const agreement = (shift: number) => {
    let sum = 0;
    for (let f = 0; f < logits.length; f++) sum += maskIou(maskOf(logits[f].map((z) => 1 / (1 + Math.exp(-(z + shift))))), reference[f]);
    return sum / logits.length;
  };
  const before = agreement(0);
  let best = { shift: 0, after: before };
  const consider = (shift: number) => {
    const a = agreement(shift);
    if (a > best.after + 1e-6) best = { shift, after: a };
  };
  for (let s = -3; s <= 3; s += 0.25) consider(Math.round(s * 100) / 100);
  const centre = best.shift;
  for (let s = centre - 0.2; s <= centre + 0.2 + 1e-9; s += 0.05) consider(Math.round(s * 100) / 100);
  return { shift: best.shift, before, after: best.after };
}

/** Adds `shift` to the logit of the model's first output: to the bias of a Conv that feeds its Sigmoid. Returns the Conv's name. */
export function shiftOutputBias(model: Model, shift: number): string | undefined {
  const g = graphOf(model);
  const producer = new Map<string, Node>();
  for (const n of g.node) for (const o of n.output) producer.set(o, n);
  const sigmoid = producer.get(g.output[0].name!);
  if (sigmoid?.opType !== 'Sigmoid') return undefined;
  const initializers = new Map(g.initializer.map((t) => [t.name!, t]));
  // the logit is one Conv, or (the lean graph) a sum of Convs: any one of them with a float bias
  const queue = [producer.get(sigmoid.input[0])];
  while (queue.length > 0) {
    const n = queue.shift();
    if (!n) continue;
    if (n.opType === 'Conv') {
      const bias = n.input[2] ? initializers.get(n.input[2]) : undefined;
      if (bias && bias.dataType === DataType.FLOAT && dims(bias).reduce((a, b) => a * b, 1) === 1) {
        const shifted = makeTensor(`${bias.name}_shifted`, DataType.FLOAT, dims(bias), Float32Array.of(floatValues(bias)[0] + shift));
        g.initializer.push(shifted);
        n.input[2] = shifted.name!;
        // the old bias, if nothing else reads it, goes (ONNX Runtime warns of unused initializers)
        if (!g.node.some((m) => m.input.includes(bias.name!))) g.initializer = g.initializer.filter((t) => t !== bias);
        return n.name ?? undefined;
      }
    } else if (n.opType === 'Add') {
      for (const i of n.input) queue.push(producer.get(i));
    }
  }
  return undefined;
}
