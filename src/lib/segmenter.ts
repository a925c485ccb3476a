// Opening a Segmenter: resolve the model, pick thread counts for this machine, load off-thread.
import * as os from 'node:os';
import { BgrmError, errorCode, errorMessage } from './errors';
import { resolveModel, type ResolvedModel } from './models';
import { native, type NativeSegmenter, type SegmenterInfo } from './native';

export interface SegmenterConfig {
  model: string;
  device?: 'cpu' | 'cuda';
  /** ONNX Runtime intra-op threads; default: all cores. */
  threads?: number;
  /** Threads for decode/resize/encode; default 1. */
  cpuThreads?: number;
  /** Model runs at once (each with `threads` threads); default 1. */
  inferenceThreads?: number;
  spinning?: boolean;
}

export interface OpenSegmenter {
  segmenter: NativeSegmenter;
  model: ResolvedModel;
  info: SegmenterInfo;
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism());
}

export async function openSegmenter(cfg: SegmenterConfig): Promise<OpenSegmenter> {
  const model = await resolveModel(cfg.model);
  const device = cfg.device ?? 'cpu';
  const segmenter = new (native().Segmenter)({
    modelPath: model.path,
    device,
    threads: cfg.threads ?? defaultThreads(),
    cpuThreads: cfg.cpuThreads ?? 1,
    inferenceThreads: cfg.inferenceThreads ?? 1,
    spinning: cfg.spinning ?? false,
    width: model.input.width,
    height: model.input.height,
    mean: model.input.mean,
    std: model.input.std,
  });
  try {
    const info = await segmenter.load();
    return { segmenter, model, info };
  } catch (err) {
    throw new BgrmError(errorCode(err), errorMessage(err));
  }
}
