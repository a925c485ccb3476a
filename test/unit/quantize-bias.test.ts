/**
 * @jest-environment ./test/helpers/process-typed-arrays.js
 */
// Output bias correction (quantize/bias.ts) on a model small enough to reason about: one 1x1 Conv
// and a Sigmoid. A copy whose logit is 0.8 too high (as int8 rounding made u2net's masks grow)
// gets the shift that undoes it, found from the masks alone, and written into the right bias.
import { onnx } from 'onnx-proto';
import { fitOutputShift, shiftOutputBias } from '../../src/lib/quantize/bias';
import { DataType, encodeModel, floatValueInfo, floatValues, graphOf, makeNode, makeTensor, type Model } from '../../src/lib/onnx-graph';

const SIZE = 16;
const input = { width: SIZE, height: SIZE, mean: [0, 0, 0], std: [1, 1, 1] };

function tinyModel(bias: number): Model {
  return onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'tiny',
      input: [onnx.ValueInfoProto.create({ name: 'x', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 1 }, { dimValue: 3 }, { dimValue: SIZE }, { dimValue: SIZE }] } } } })],
      output: [floatValueInfo('mask')],
      initializer: [makeTensor('w', DataType.FLOAT, [1, 3, 1, 1], Float32Array.of(1 / 3, 1 / 3, 1 / 3)), makeTensor('b', DataType.FLOAT, [1], Float32Array.of(bias))],
      node: [makeNode('Conv', ['x', 'w', 'b'], ['logit'], 'head'), makeNode('Sigmoid', ['logit'], ['mask'], 'sigmoid')],
    },
  });
}

/** Frames whose logit runs across the picture, each with its own slope and offset. */
function frames(): Float32Array[] {
  return Array.from({ length: 6 }, (_, f) => {
    const t = new Float32Array(3 * SIZE * SIZE);
    for (let c = 0; c < 3; c++) for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) t[c * SIZE * SIZE + y * SIZE + x] = (x + y * 0.3 - SIZE / 2) * (0.4 + 0.1 * f) + 0.2 * f - 2;
    return t;
  });
}

describe('output bias correction', () => {
  it('finds the logit shift that undoes a biased copy, and writes it into the bias of the Conv before the Sigmoid', async () => {
    const calib = { tensors: frames(), hash: 'test', source: 'test' };
    const biased = tinyModel(0.8);
    const fit = await fitOutputShift(encodeModel(tinyModel(0)), encodeModel(biased), calib, input);
    expect(fit.before).toBeLessThan(0.99); // the biased masks are larger
    expect(fit.shift).toBeCloseTo(-0.8, 5);
    expect(fit.after).toBe(1);
    expect(shiftOutputBias(biased, fit.shift)).toBe('head');
    const g = graphOf(biased);
    const bias = g.initializer.find((t) => t.name === g.node[0].input[2])!;
    expect(floatValues(bias)[0]).toBeCloseTo(0, 5);
    expect(g.initializer.map((t) => t.name)).toEqual(['w', 'b_shifted']); // the old bias is gone
  });

  it('leaves a model that already agrees alone', async () => {
    const calib = { tensors: frames(), hash: 'test', source: 'test' };
    const fit = await fitOutputShift(encodeModel(tinyModel(0)), encodeModel(tinyModel(0)), calib, input);
    expect(fit).toEqual({ shift: 0, before: 1, after: 1 });
  });
});
