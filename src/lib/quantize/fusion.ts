// The fusion check: ONNX Runtime optimises a model as bgrm runs it, and the op types it ends up
// with are counted (how many Convs run as QLinearConv).
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeModel, opCounts } from '../onnx-graph';
import { ort } from './ort';

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
