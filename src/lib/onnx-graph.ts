// Reading, editing and writing ONNX graphs (onnx-proto's protobuf classes), for the quantiser.
import { onnx } from 'onnx-proto';

export type Model = onnx.ModelProto;
export interface Graph {
  node: Node[];
  input: onnx.ValueInfoProto[];
  output: onnx.ValueInfoProto[];
  initializer: Tensor[];
}

/** Decoded graphs always have their repeated fields (protobufjs fills them with arrays). */
export function graphOf(model: Model): Graph {
  if (!model.graph) throw new Error('the model has no graph');
  return model.graph as unknown as Graph;
}
export type Node = onnx.NodeProto;
export type Tensor = onnx.TensorProto;

export const DataType = onnx.TensorProto.DataType;

export function decodeModel(bytes: Uint8Array): Model {
  return onnx.ModelProto.decode(bytes);
}

/** Serialises a model. protobufjs writes fields in a fixed order, so equal models give equal bytes. */
export function encodeModel(model: Model): Buffer {
  const bytes = onnx.ModelProto.encode(model).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A deep copy through the wire format (the quantiser never edits the caller's model). */
export function cloneModel(model: Model): Model {
  return decodeModel(encodeModel(model));
}

export function num(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function dims(t: Tensor): number[] {
  return (t.dims ?? []).map(num);
}

/** The float values of an initializer (raw_data or float_data). */
export function floatValues(t: Tensor): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new Error(`initializer ${t.name} is not float32`);
  if (t.rawData && t.rawData.length > 0) {
    const copy = new Uint8Array(t.rawData); // aligned copy
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}

export function makeTensor(name: string, dataType: number, shape: number[], data: ArrayBufferView): Tensor {
  return onnx.TensorProto.create({
    name,
    dataType,
    dims: shape,
    rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  });
}

export function makeNode(opType: string, inputs: string[], outputs: string[], name: string, attributes: onnx.IAttributeProto[] = []): Node {
  return onnx.NodeProto.create({ opType, input: inputs, output: outputs, name, attribute: attributes });
}

export function intAttribute(name: string, value: number): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}

export function intsAttribute(name: string, values: number[]): onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: values };
}

export function attribute(node: Node, name: string): onnx.IAttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function floatValueInfo(name: string): onnx.ValueInfoProto {
  return onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: DataType.FLOAT } } });
}

/** Counts nodes per op type (domain-qualified for non-ONNX domains). */
export function opCounts(model: Model): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of graphOf(model).node) {
    const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType!;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

export function defaultOpset(model: Model): number {
  const entry = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry ? num(entry.version) : 0;
}
