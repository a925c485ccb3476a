// The lean graph (model-lean.ts) of the real u2netp: every Conv(Concat) split into a sum of Convs,
// no concatenation left in front of a Conv, the one-channel side outputs as three nodes each, and
// the same masks as the original graph on real frames; the lean file is made once beside an
// installed model and reused.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LEAN_VERSION, leanModel, leanPath, scalarConvs, splitConcatConvs, splitNarrowConvs } from '../../src/lib/model-lean';
import { decodeModel, encodeModel, graphOf } from '../../src/lib/onnx-graph';
import { openSegmenter, type OpenSegmenter } from '../../src/lib/segmenter';
import { describeWith, hasTestdata, modelPath, testdata } from '../helpers/testdata';

jest.setTimeout(5 * 60 * 1000);

describeWith('../shared/testdata/davis', hasTestdata('davis'))('lean graph (u2netp)', () => {
  let dir: string;
  const opened: OpenSegmenter[] = [];
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-lean-'));
  });
  afterAll(async () => {
    for (const o of opened) o.segmenter.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('splits every Conv that reads a concatenation, and the masks stay the same', async () => {
    const model = decodeModel(await fs.readFile(modelPath('u2netp')));
    const before = graphOf(model).node.filter((n) => n.opType === 'Concat').length;
    const split = splitConcatConvs(model);
    expect(split).toBeGreaterThanOrEqual(40); // u2netp: every decoder level of every RSU block
    const g = graphOf(model);
    const producer = new Map(g.node.flatMap((n) => n.output.map((o) => [o, n] as const)));
    expect(g.node.filter((n) => n.opType === 'Conv' && producer.get(n.input[0])?.opType === 'Concat')).toHaveLength(0);
    expect(g.node.filter((n) => n.opType === 'Concat').length).toBe(before - split);
    // the six side outputs (64 or 16 channels to one, 3x3): a 1x1 Conv to the nine taps, a
    // depthwise Conv that puts each tap in place, a sum over the taps
    const inits = new Map(g.initializer.map((t) => [t.name ?? '', t]));
    const oneChannel = () => g.node.filter((n) => n.opType === 'Conv' && Number(inits.get(n.input[1])?.dims?.[0]) === 1 && Number(inits.get(n.input[1])?.dims?.[2]) === 3);
    expect(oneChannel()).toHaveLength(6);
    expect(splitNarrowConvs(model)).toBe(6);
    const after = new Map(g.initializer.map((t) => [t.name ?? '', t]));
    expect(g.node.filter((n) => n.opType === 'Conv' && Number(after.get(n.input[1])?.dims?.[0]) === 1 && Number(after.get(n.input[1])?.dims?.[2]) === 3)).toHaveLength(0);
    expect(g.node.filter((n) => n.opType === 'ReduceSum')).toHaveLength(6);
    expect(splitNarrowConvs(model)).toBe(0); // nothing left to rewrite
    // the fusion of the six side outputs (a 1x1 Conv from six channels, split per input): each a Mul
    // by its weight, the first with an Add of the bias
    const unit = () => {
      const weights = new Map(g.initializer.map((t) => [t.name ?? '', t]));
      return g.node.filter((n) => n.opType === 'Conv' && weights.get(n.input[1])?.dims?.map(Number).join() === '1,1,1,1');
    };
    expect(unit()).toHaveLength(6);
    const muls = g.node.filter((n) => n.opType === 'Mul').length;
    expect(scalarConvs(model)).toBe(6);
    expect(unit()).toHaveLength(0);
    expect(g.node.filter((n) => n.opType === 'Mul').length).toBe(muls + 6);
    expect(scalarConvs(model)).toBe(0);
    const names = new Set(g.node.flatMap((n) => n.input));
    expect(g.initializer.every((t) => names.has(t.name ?? ''))).toBe(true); // no weight left unread
    const leanFile = path.join(dir, 'u2netp-lean-test.onnx');
    await fs.writeFile(leanFile, encodeModel(model));

    // A path outside the models folder loads as it is; 'pattern' loads the original graph.
    const lean = await openSegmenter({ model: leanFile, threads: 2 });
    const original = await openSegmenter({ model: 'u2netp', threads: 2, memory: 'pattern' });
    opened.push(lean, original);
    // the lean plan runs without ONNX Runtime's buffer reuse plan (segmenter.cc), the other with it
    expect(lean.info.memoryReuse).toBe(false);
    expect(original.info.memoryReuse).toBe(true);
    for (const [seq, frame] of [['dog', '00010.jpg'], ['breakdance', '00020.jpg'], ['kite-surf', '00005.jpg']]) {
      const jpg = await fs.readFile(path.join(testdata, 'davis', seq, frame));
      const a = await lean.segmenter.process(jpg, { output: 'mask', encoding: 'raw' });
      const b = await original.segmenter.process(jpg, { output: 'mask', encoding: 'raw' });
      expect([a.width, a.height]).toEqual([b.width, b.height]);
      let max = 0;
      for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs(a.data[i] - b.data[i]));
      expect(max).toBeLessThanOrEqual(1); // float rounding only
    }
  });

  it('an installed model gets its lean file once, remade when the model changes', async () => {
    const models = path.join(dir, 'models');
    await fs.mkdir(models);
    const file = path.join(models, 'u2netp.onnx');
    await fs.copyFile(modelPath('u2netp'), file);
    const logs: string[] = [];
    expect(await leanModel(file, (m) => logs.push(m))).toBe(leanPath(file));
    expect(logs.join('\n')).toContain('concatenations no longer held');
    const made = (await fs.stat(leanPath(file))).mtimeMs;
    expect(await leanModel(file)).toBe(leanPath(file));
    expect((await fs.stat(leanPath(file))).mtimeMs).toBe(made); // reused
    const record = JSON.parse(await fs.readFile(`${leanPath(file)}.json`, 'utf8'));
    expect(record).toMatchObject({ splitConvs: expect.any(Number), narrowConvs: 6, scalarConvs: 6, leanVersion: LEAN_VERSION });
    await fs.utimes(file, new Date(), new Date(Date.now() + 5000)); // "a new model"
    const relog: string[] = [];
    await leanModel(file, (m) => relog.push(m));
    expect(relog.join('\n')).toContain('prepared');
  });
});
