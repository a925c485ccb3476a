// Lean model graphs: the same function with a smaller live set, and in the forms ONNX Runtime runs
// fastest, made once beside the model file.
//
// U-2-Net's decoders read Conv(Concat(a, b)) at every level, up to 128 channels at 320x320 (52 MB
// per concatenation, and ONNX Runtime keeps a second, blocked-layout copy of it for the Conv). A
// convolution is linear in its input channels, so the same result is Conv(a, Wa) + Conv(b, Wb),
// with the weights split along their input channels; ONNX Runtime then fuses the Add (and the
// ReLU after it) into the second Conv. The outputs equal the original's to float rounding, no
// concatenation is ever held: measured in ONNX Runtime alone, a u2netp run's live peak fell from
// 237 MB to 127 MB (npm run bench:memory shows what it does to a whole process). The side outputs'
// one-channel Convs become three cheaper nodes (splitNarrowConvs), and their fusion Mul and Add
// (scalarConvs); oneChannelForms does both, for the float lean graph and the int8 one alike.
import { promises as fs } from 'node:fs';
import { BgrmError, errorMessage } from './errors';
import { writeFileAtomic } from './paths';
import { attribute, decodeModel, defaultOpset, dims, encodeModel, floatValues, graphOf, intAttribute, intsAttribute, makeNode, makeTensor, type Model, type Node, type Tensor, DataType, num } from './onnx-graph';

/** Bumped whenever the rewrite changes: lean files made by an older one are made again. */
export const LEAN_VERSION = 3; // 2: one-channel Convs split (splitNarrowConvs); 3: one-to-one-channel 1x1 Convs as Mul (scalarConvs)

const SAME_CHANNELS = new Set(['Relu', 'Resize', 'Upsample', 'MaxPool', 'AveragePool', 'BatchNormalization', 'Sigmoid', 'Add', 'Mul']);

/** Channels of a tensor, followed back to the Conv that made it; undefined when not known. */
function channelsOf(tensor: string, producer: Map<string, Node>, initializers: Map<string, Tensor>, depth = 0): number | undefined {
  const n = producer.get(tensor);
  if (!n || depth > 64) return undefined;
  if (n.opType === 'Conv') {
    const w = initializers.get(n.input[1]);
    return w ? dims(w)[0] : undefined;
  }
  if (SAME_CHANNELS.has(n.opType)) return channelsOf(n.input[0], producer, initializers, depth + 1);
  if (n.opType === 'Concat' && num(attribute(n, 'axis')?.i) === 1) {
    let sum = 0;
    for (const i of n.input) {
      const c = channelsOf(i, producer, initializers, depth + 1);
      if (c === undefined) return undefined;
      sum += c;
    }
    return sum;
  }
  return undefined;
}

/** Every value of the node's ints attribute `name` is v (true when the attribute is absent). */
function intsAll(n: Node, name: string, v: number): boolean {
  return (attribute(n, name)?.ints ?? []).every((x) => num(x) === v);
}

/** The graph's nodes become `nodes`; weights no node reads any more (the rewritten ones) leave the file. */
function replaceNodes(model: Model, nodes: Node[]): void {
  const g = graphOf(model);
  g.node.splice(0, g.node.length, ...nodes);
  const read = new Set(nodes.flatMap((n) => n.input));
  const kept = g.initializer.filter((t) => read.has(t.name ?? ''));
  g.initializer.splice(0, g.initializer.length, ...kept);
}

/** Splits a [O, C, kh, kw] weight along C at the given channel counts. */
function splitWeight(w: Tensor, parts: number[]): Float32Array[] {
  const [o, c, kh, kw] = dims(w);
  const values = floatValues(w);
  const per = kh * kw;
  const out: Float32Array[] = [];
  let start = 0;
  for (const p of parts) {
    const part = new Float32Array(o * p * per);
    for (let k = 0; k < o; k++) part.set(values.subarray((k * c + start) * per, (k * c + start + p) * per), k * p * per);
    out.push(part);
    start += p;
  }
  return out;
}

/**
 * Rewrites every Conv(Concat(x1..xn, axis 1)) whose concatenation feeds nothing else into a sum
 * of Convs, one per input. Returns how many were rewritten. Edits the model in place.
 */
export function splitConcatConvs(model: Model): number {
  const g = graphOf(model);
  const initializers = new Map(g.initializer.map((t) => [t.name ?? '', t]));
  const producer = new Map<string, Node>();
  const uses = new Map<string, number>();
  for (const n of g.node) {
    for (const o of n.output) producer.set(o, n);
    for (const i of n.input) uses.set(i, (uses.get(i) ?? 0) + 1);
  }
  for (const o of g.output) uses.set(o.name ?? '', (uses.get(o.name ?? '') ?? 0) + 1);

  const dropped = new Set<Node>();
  const replaced = new Map<Node, Node[]>();
  const newInitializers: Tensor[] = [];
  for (const n of g.node) {
    if (n.opType !== 'Conv' || num(attribute(n, 'group')?.i ?? 1) !== 1) continue;
    const cat = producer.get(n.input[0]);
    const w = initializers.get(n.input[1]);
    if (!cat || cat.opType !== 'Concat' || num(attribute(cat, 'axis')?.i) !== 1 || cat.input.length < 2) continue;
    if (uses.get(n.input[0]) !== 1 || !w || w.dataType !== DataType.FLOAT || dims(w).length !== 4) continue;
    const parts = cat.input.map((i) => channelsOf(i, producer, initializers));
    if (parts.some((p) => p === undefined) || (parts as number[]).reduce((a, b) => a + b, 0) !== dims(w)[1]) continue;
    const [o, , kh, kw] = dims(w);
    const weights = splitWeight(w, parts as number[]);
    const nodes: Node[] = [];
    let sum = '';
    cat.input.forEach((x, k) => {
      const wName = `${n.output[0]}_lean_w${k}`; // per Conv output: unique even where Convs share a weight
      newInitializers.push(makeTensor(wName, DataType.FLOAT, [o, (parts as number[])[k], kh, kw], weights[k]));
      const y = `${n.output[0]}_lean${k}`;
      const inputs = k === 0 && n.input[2] ? [x, wName, n.input[2]] : [x, wName];
      nodes.push(makeNode('Conv', inputs, [y], `${n.name}_lean${k}`, n.attribute));
      if (k === 0) {
        sum = y;
      } else {
        const s = k === cat.input.length - 1 ? n.output[0] : `${n.output[0]}_leansum${k}`;
        nodes.push(makeNode('Add', [sum, y], [s], `${n.name}_leanadd${k}`));
        sum = s;
      }
    });
    replaced.set(n, nodes);
    dropped.add(cat);
  }
  if (replaced.size === 0) return 0;
  const nodes: Node[] = [];
  for (const n of g.node) {
    if (dropped.has(n)) continue;
    nodes.push(...(replaced.get(n) ?? [n]));
  }
  g.initializer.push(...newInitializers);
  replaceNodes(model, nodes);
  return replaced.size;
}

/**
 * Rewrites every k x k Conv with one output channel (U-2-Net's side outputs) into a 1x1 Conv to k*k
 * channels, one per tap, a depthwise k x k Conv that moves each tap's channel into place, and a
 * ReduceSum over the taps. The sum is the same (to float rounding); the point is the layout ONNX
 * Runtime gives it: a Conv with one output channel runs in its blocked layout with the output padded
 * to 16 channels, so u2netp's 64 -> 1 side output at 320x320 did 16 times its work (17 ms of a 206 ms
 * int8 run on one thread; about 4 ms as the three nodes).
 * In an int8 graph, where the side output reads a DequantizeLinear, the taps are a MatMul over the
 * channels of the input in channels-last order (Transpose, MatMul, Transpose): ONNX Runtime keeps
 * that tensor channels-last in uint8 and cancels the first Transpose against its own, where the 1x1
 * Conv needed it dequantized and then copied again into the blocked layout, two 26 MB float copies at
 * the end of a u2netp-int8 run (its peak). Returns how many were rewritten; edits in place.
 */
export function splitNarrowConvs(model: Model): number {
  const g = graphOf(model);
  const initializers = new Map(g.initializer.map((t) => [t.name ?? '', t]));
  const opset = defaultOpset(model);
  const producer = new Map(g.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
  const nodes: Node[] = [];
  let rewritten = 0;
  for (const n of g.node) {
    const w = n.opType === 'Conv' ? initializers.get(n.input[1]) : undefined;
    const shape = w ? dims(w) : [];
    const [o, c, kh, kw] = shape;
    const pads = (attribute(n, 'pads')?.ints ?? []).map(num);
    const bias = n.input[2] ? initializers.get(n.input[2]) : undefined;
    const fits =
      w && w.dataType === DataType.FLOAT && shape.length === 4 && o === 1 && kh === kw && kh > 1 && kh % 2 === 1 && c > kh * kw &&
      num(attribute(n, 'group')?.i ?? 1) === 1 && intsAll(n, 'strides', 1) && intsAll(n, 'dilations', 1) && !attribute(n, 'auto_pad')?.s?.length &&
      pads.length === 4 && pads.every((p) => p === (kh - 1) / 2) && (!n.input[2] || (bias && bias.dataType === DataType.FLOAT));
    if (!fits) {
      nodes.push(n);
      continue;
    }
    const taps = kh * kw;
    const values = floatValues(w!);
    const quantized = producer.get(n.input[0])?.opType === 'DequantizeLinear';
    const toTaps = new Float32Array(taps * c); // [taps, C, 1, 1] (a Conv) or [C, taps] (a MatMul): tap t of every input channel
    for (let t = 0; t < taps; t++) for (let k = 0; k < c; k++) toTaps[quantized ? k * taps + t : t * c + k] = values[k * taps + t];
    const place = new Float32Array(taps * taps); // [taps, 1, kh, kw]: channel t takes its own tap
    for (let t = 0; t < taps; t++) place[t * taps + t] = 1;
    const b = bias ? floatValues(bias)[0] : 0;
    const p = `${n.output[0]}_narrow`;
    g.initializer.push(
      makeTensor(`${p}_taps_w`, DataType.FLOAT, quantized ? [c, taps] : [taps, c, 1, 1], toTaps),
      makeTensor(`${p}_place_w`, DataType.FLOAT, [taps, 1, kh, kw], place),
      makeTensor(`${p}_place_b`, DataType.FLOAT, [taps], new Float32Array(taps).fill(b / taps)),
    );
    if (quantized) {
      nodes.push(
        makeNode('Transpose', [n.input[0]], [`${p}_nhwc`], `${n.name}_nhwc`, [intsAttribute('perm', [0, 2, 3, 1])]),
        makeNode('MatMul', [`${p}_nhwc`, `${p}_taps_w`], [`${p}_taps_nhwc`], `${n.name}_taps`),
        makeNode('Transpose', [`${p}_taps_nhwc`], [`${p}_taps`], `${n.name}_nchw`, [intsAttribute('perm', [0, 3, 1, 2])]),
      );
    } else {
      nodes.push(makeNode('Conv', [n.input[0], `${p}_taps_w`], [`${p}_taps`], `${n.name}_taps`, [intsAttribute('kernel_shape', [1, 1])]));
    }
    nodes.push(
      makeNode('Conv', [`${p}_taps`, `${p}_place_w`, `${p}_place_b`], [`${p}_placed`], `${n.name}_place`, [
        intsAttribute('kernel_shape', [kh, kw]),
        intsAttribute('pads', pads),
        intAttribute('group', taps),
      ]),
    );
    if (opset >= 13) {
      g.initializer.push(makeTensor(`${p}_axes`, DataType.INT64, [1], new BigInt64Array([1n])));
      nodes.push(makeNode('ReduceSum', [`${p}_placed`, `${p}_axes`], [n.output[0]], `${n.name}_sum`, [intAttribute('keepdims', 1)]));
    } else {
      nodes.push(makeNode('ReduceSum', [`${p}_placed`], [n.output[0]], `${n.name}_sum`, [intsAttribute('axes', [1]), intAttribute('keepdims', 1)]));
    }
    rewritten++;
  }
  if (rewritten === 0) return 0;
  replaceNodes(model, nodes);
  return rewritten;
}

/**
 * Rewrites every Conv from one channel to one channel with a 1x1 kernel (U-2-Net's fusion of its six
 * side outputs, once splitConcatConvs has split it per input) into a Mul by the weight and an Add
 * of the bias. Same values; the point is again the layout: ONNX Runtime ran each of them in its
 * blocked layout, the one channel padded to 16 and each padded input held until the fusion, 33 MB
 * of a u2netp-int8 run's 83 MB peak at 320x320. Returns how many were rewritten; edits in place.
 */
export function scalarConvs(model: Model): number {
  const g = graphOf(model);
  const initializers = new Map(g.initializer.map((t) => [t.name ?? '', t]));
  const nodes: Node[] = [];
  let rewritten = 0;
  for (const n of g.node) {
    const w = n.opType === 'Conv' ? initializers.get(n.input[1]) : undefined;
    const bias = n.input[2] ? initializers.get(n.input[2]) : undefined;
    const fits =
      w && w.dataType === DataType.FLOAT && dims(w).join() === '1,1,1,1' && num(attribute(n, 'group')?.i ?? 1) === 1 &&
      intsAll(n, 'strides', 1) && intsAll(n, 'pads', 0) && !attribute(n, 'auto_pad')?.s?.length && (!n.input[2] || (bias && bias.dataType === DataType.FLOAT));
    if (!fits) {
      nodes.push(n);
      continue;
    }
    const p = `${n.output[0]}_scalar`;
    g.initializer.push(makeTensor(`${p}_w`, DataType.FLOAT, [], new Float32Array([floatValues(w!)[0]])));
    if (bias) {
      g.initializer.push(makeTensor(`${p}_b`, DataType.FLOAT, [], new Float32Array([floatValues(bias)[0]])));
      nodes.push(makeNode('Mul', [n.input[0], `${p}_w`], [`${p}_scaled`], `${n.name}_mul`), makeNode('Add', [`${p}_scaled`, `${p}_b`], [n.output[0]], `${n.name}_bias`));
    } else {
      nodes.push(makeNode('Mul', [n.input[0], `${p}_w`], [n.output[0]], `${n.name}_mul`));
    }
    rewritten++;
  }
  if (rewritten === 0) return 0;
  replaceNodes(model, nodes);
  return rewritten;
}

/** The side outputs and their fusion in the forms above (float lean graph and int8 graph alike). */
export function oneChannelForms(model: Model): { narrowConvs: number; scalarConvs: number } {
  return { narrowConvs: splitNarrowConvs(model), scalarConvs: scalarConvs(model) };
}

export interface LeanRecord {
  from: string;
  fromBytes: number;
  fromMtimeMs: number;
  leanVersion: number;
  splitConvs: number;
  narrowConvs: number;
  scalarConvs: number;
}

/** The lean file of a float model file, and its record. */
export function leanPath(modelFile: string): string {
  return modelFile.replace(/\.onnx$/, '') + '.lean.onnx';
}

async function readRecord(file: string): Promise<LeanRecord | undefined> {
  try {
    return JSON.parse(await fs.readFile(`${file}.json`, 'utf8')) as LeanRecord;
  } catch {
    return undefined;
  }
}

/**
 * The model file to load for `modelFile`: its lean form, made now if it is missing or was made
 * from another file or by an older rewrite. A model with nothing to rewrite loads as it is.
 */
export async function leanModel(modelFile: string, log?: (m: string) => void): Promise<string> {
  const target = leanPath(modelFile);
  const st = await fs.stat(modelFile);
  const record = await readRecord(target);
  const fresh = (r: LeanRecord | undefined) => r && r.fromBytes === st.size && r.fromMtimeMs === st.mtimeMs && r.leanVersion === LEAN_VERSION;
  if (fresh(record)) return record!.splitConvs + record!.narrowConvs + record!.scalarConvs > 0 ? target : modelFile;
  let model: Model;
  try {
    model = decodeModel(await fs.readFile(modelFile));
  } catch (err) {
    throw new BgrmError('ERR_MODEL_LOAD', `cannot read model '${modelFile}': ${errorMessage(err)}. Fetch it again (bgrm models pull NAME)`);
  }
  const splitConvs = splitConcatConvs(model);
  const { narrowConvs, scalarConvs: scalars } = oneChannelForms(model);
  const rec: LeanRecord = { from: modelFile, fromBytes: st.size, fromMtimeMs: st.mtimeMs, leanVersion: LEAN_VERSION, splitConvs, narrowConvs, scalarConvs: scalars };
  const changed = splitConvs + narrowConvs + scalars > 0;
  try {
    if (changed) {
      await writeFileAtomic(target, encodeModel(model));
      log?.(`prepared ${target}: ${splitConvs} concatenations no longer held, ${narrowConvs + scalars} one-channel convolutions in a faster form (same outputs)`);
    }
    await writeFileAtomic(`${target}.json`, Buffer.from(`${JSON.stringify(rec, null, 2)}\n`));
  } catch (err) {
    // A read-only models folder: run the model as it is.
    log?.(`cannot write ${target} (${errorMessage(err)}); the model runs unchanged, with more memory`);
    return modelFile;
  }
  return changed ? target : modelFile;
}
