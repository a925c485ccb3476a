// Static int8 quantisation of U-2-Net models: the recipe, its constants, and which tensors of the
// graph are activations to quantise (the plan every later stage follows).
//
// The recipe:
// - the graph is the lean one (model-lean.ts): each Conv(Concat(a, b)) is Conv(a) + Conv(b), so
//   the two Convs quantise their own outputs and the Add runs as QLinearAdd;
// - activations are uint8, per tensor, asymmetric. Their ranges are the whole range seen over the
//   calibration frames (stats.ts says why not a percentile);
// - weights are int8, per output channel, symmetric; biases are int32 with scale input × weight;
// - QuantizeLinear/DequantizeLinear pairs go on the model input and on the outputs of Relu (the
//   Relu then folds away, because its Q has zero point 0), MaxPool, Resize, Concat and Add. Conv
//   and Add outputs that feed a Relu are left to the Relu. MaxPool's output shares its input's
//   parameters (it runs in uint8); Resize's output is calibrated on its own (and made to differ
//   where its range came out equal), so ONNX Runtime keeps Resize in float: its uint8 bilinear
//   Resize (and the layout transposes around it) is slower here;
// - weights go int8 only for the Convs ONNX Runtime runs in int8 (input and output quantised);
// - the 1-channel head (side outputs, their upsampling, the fusion Conv, Sigmoid) stays float,
//   weights included;
// - outlier channels stay float. u2netp has channels that are nearly constant and far larger than
//   the rest of their tensor, so one uint8 scale would crush every other channel. A tensor holding
//   such a channel keeps float, and so do the Convs that read it (weights included);
// - the output's logit is shifted so that the int8 masks agree best with the float model's on the
//   calibration frames (bias.ts: output bias correction);
// - the opset goes from 11 to 13 (per-channel DequantizeLinear needs `axis`), and Unsqueeze's axes
//   move from an attribute to an input as opset 13 requires.
// Same model + same calibration frames + same quantiser version → byte-identical output.
import { DataType, graphOf, type Model, type Node } from '../onnx-graph';

export const QUANTIZER_VERSION = 8; // 2: Resize in float; 3: the lean graph (model-lean.ts); 4: whole ranges, output bias correction; 5: every Resize float, float Convs keep float weights; 6: free input size (free-size.ts); 7: one-channel Convs split (splitNarrowConvs); 8: the side outputs' taps as a MatMul on the uint8 tensor, their fusion as Mul and Add (scalarConvs)
/** The first recipe whose models take any input size (free-size.ts): --fast's region runs need it. */
export const FREE_INPUT_SIZE_VERSION = 6;
export const DEFAULT_CALIBRATION_FRAMES = 40;
/**
 * Fewer calibration frames than this give ranges fitted to a few pictures (one photo, a two-second
 * clip): such a model is made only when asked for by name (--min-frames), never silently.
 */
export const MIN_CALIBRATION_FRAMES = 16;
export const BINS = 2048;

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
export const RANGE_KEEPING = new Set(['MaxPool']);

export interface GraphPlan {
  /** Activation tensors in graph order. */
  activations: string[];
  producer: Map<string, Node>;
  consumers: Map<string, Node[]>;
  /** Tensors calibrated (candidates for their own quantisation parameters). */
  calibrated: string[];
}

export function dataInputs(n: Node): string[] {
  if (n.opType === 'Resize' || n.opType === 'Conv') return [n.input[0]];
  return n.input.filter((x) => x !== '');
}

export function planGraph(model: Model): GraphPlan {
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
