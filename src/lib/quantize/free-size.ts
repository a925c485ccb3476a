// A free input size: the int8 model runs at any height and width that are multiples of 32 (the
// temporal stream runs it on the region around the subject, not only on the whole frame).
//
// U-2-Net upsamples each decoder level to the size of the skip tensor it meets, which the export
// wrote as Shape -> Gather -> Concat -> Resize(sizes). With the input size fixed ONNX Runtime folds
// those into constants; with it free it cannot, and then fuses less of the int8 graph (measured:
// 130 of 158 Convs as QLinearConv, 199 DequantizeLinear left, a 320x320 run 1.6x slower). On an
// input whose sides are multiples of 32 every level is exactly twice the one below, so each Resize
// gets its constant scale instead and the shape arithmetic goes: the graph ONNX Runtime runs is the
// fixed one's, at any size.
import { encodeModel, floatValueInfo, graphOf, makeTensor, num, DataType, type Model, type Node } from '../onnx-graph';
import { ort } from './ort';

/** The stride of U-2-Net's deepest level: inputs whose sides are multiples of it upsample exactly. */
const SIZE_STEP = 32;

/** Removes the nodes none of whose outputs reach a graph output, and the initializers nothing reads. */
function prune(model: Model): void {
  const g = graphOf(model);
  const needed = new Set(g.output.map((o) => o.name));
  const kept: Node[] = [];
  for (let i = g.node.length - 1; i >= 0; i--) {
    const n = g.node[i];
    if (!n.output.some((o) => needed.has(o))) continue;
    kept.push(n);
    for (const x of n.input) needed.add(x);
  }
  g.node = kept.reverse();
  g.initializer = g.initializer.filter((t) => needed.has(t.name!));
}

/**
 * Gives every Resize whose output size is computed from another tensor's shape the constant scale it
 * has at the model's own input size, frees the input's height and width, and drops the shape
 * arithmetic. Returns how many Resizes were changed (0: the model is left as it was: its input size
 * is not fixed, or a scale is not a whole number). Edits the model in place.
 */
export async function freeInputSize(model: Model): Promise<number> {
  const g = graphOf(model);
  const inputDims = g.input[0]?.type?.tensorType?.shape?.dim ?? [];
  const fixed = inputDims.map((d) => num(d.dimValue));
  if (fixed.length !== 4 || fixed.some((d) => !(d > 0)) || fixed[2] % SIZE_STEP !== 0 || fixed[3] % SIZE_STEP !== 0) return 0;
  const initializers = new Set(g.initializer.map((t) => t.name));
  const resizes = g.node.filter((n) => n.opType === 'Resize' && n.input.length === 4 && n.input[3] && !initializers.has(n.input[3]));
  if (resizes.length === 0) return 0;
  // the shape of each Resize's input and output at the model's own size, from one run
  const extra = resizes.flatMap((n) => [floatValueInfo(n.input[0]), floatValueInfo(n.output[0])]);
  g.output.push(...extra);
  const probe = encodeModel(model);
  g.output.splice(g.output.length - extra.length, extra.length);
  const session = await ort().InferenceSession.create(probe, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
  let shapes: Record<string, readonly number[]>;
  try {
    const input = new (ort().Tensor)('float32', new Float32Array(fixed.reduce((a, b) => a * b, 1)), fixed);
    const out = await session.run({ [session.inputNames[0]]: input });
    shapes = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.dims]));
  } finally {
    await session.release();
  }
  const scales = resizes.map((n) => {
    const [x, y] = [shapes[n.input[0]], shapes[n.output[0]]];
    return x.length === 4 && y.length === 4 ? [y[2] / x[2], y[3] / x[3]] : [NaN, NaN];
  });
  if (scales.some((s) => s.some((f) => !Number.isInteger(f) || f < 1))) return 0;
  resizes.forEach((n, i) => {
    const name = `${n.name || n.output[0]}_scales`;
    g.initializer.push(makeTensor(name, DataType.FLOAT, [4], new Float32Array([1, 1, scales[i][0], scales[i][1]])));
    n.input = [n.input[0], n.input[1], name];
  });
  for (const v of [g.input[0], ...g.output]) {
    const d = v.type?.tensorType?.shape?.dim;
    if (d?.length === 4) {
      d[2] = { dimParam: 'height' };
      d[3] = { dimParam: 'width' };
    }
  }
  model.graph!.valueInfo = []; // shapes inferred at the fixed size would contradict a free one
  prune(model);
  return resizes.length;
}
