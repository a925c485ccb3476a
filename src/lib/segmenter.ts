// Opening a Segmenter: resolve the model, pick thread counts for this machine, load off-thread.
import * as os from 'node:os';
import * as path from 'node:path';
import { BgrmError, errorCode, errorMessage } from './errors';
import { leanModel } from './model-lean';
import { modelsDir, resolveModel, type ResolvedModel } from './models';
import { native, type NativeSegmenter, type SegmenterInfo } from './native';
import type { KeyframeInterval } from './render';

export interface SegmenterConfig {
  model: string;
  device?: 'cpu' | 'cuda';
  /** ONNX Runtime intra-op threads per model run; default: 1 (with one run per core, see threadLayout). */
  threads?: number;
  /** Threads for decode/resize/encode; default 1. */
  cpuThreads?: number;
  /** Model runs at once (each with `threads` threads); default: one per core when threads is unset, else 1. */
  inferenceThreads?: number;
  spinning?: boolean;
  /** With adaptive keyframes ('auto') a stream's model runs rarely overlap: see threadLayout. */
  keyframeInterval?: KeyframeInterval;
  /**
   * 'lean' (default): installed float models run their lean graph (model-lean.ts), ONNX Runtime's
   * memory pattern planner and buffer reuse plan are off (each tensor freed when last read) and one
   * arena serves the process. 'lean-reuse': the same with the buffer reuse plan on (the default
   * before it was turned off). 'pattern': ONNX Runtime's own defaults (both for comparison:
   * npm run bench:memory). Default from BGRM_ORT_MEMORY.
   */
  memory?: MemoryPlan;
}

export type MemoryPlan = 'lean' | 'lean-reuse' | 'pattern';

export function defaultMemoryPlan(): MemoryPlan {
  const v = process.env.BGRM_ORT_MEMORY;
  if (v === undefined || v === '' || v === 'lean') return 'lean';
  if (v === 'pattern' || v === 'lean-reuse') return v;
  throw new BgrmError('ERR_INVALID_ARGUMENT', `BGRM_ORT_MEMORY='${v}' is not a memory plan: use lean (the default), lean-reuse or pattern`);
}

export interface OpenSegmenter {
  segmenter: NativeSegmenter;
  model: ResolvedModel;
  info: SegmenterInfo;
}

export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism());
}

/**
 * Thread layout on CPU. Measured on 2 cores (npm run bench): with decode/encode sharing the cores,
 * one single-threaded model run per core keeps the cores busier than one run using every core
 * (whose threads wait for each other whenever one is pre-empted). So by default: one run per core,
 * one thread each; an explicit --threads N means one run with N threads.
 * With adaptive keyframes a stream's model runs mostly come one at a time (the next one is decided
 * by the matte this one gives), so each run gets every core, and two may overlap (a fast scene):
 * on 2 cores 2 x 2 threads gave 19.1 frames/s against 15.0 for 2 x 1 (slow footage) and 9.3
 * against 8.9 (fast), while frames that all run the model were 13% slower with it (3.34 against
 * 3.84), so that layout is kept for adaptive keyframes only.
 */
export function threadLayout(cfg: Pick<SegmenterConfig, 'threads' | 'inferenceThreads' | 'device' | 'keyframeInterval'>): { threads: number; inferenceThreads: number } {
  if (cfg.device === 'cuda') return { threads: cfg.threads ?? 1, inferenceThreads: cfg.inferenceThreads ?? 1 };
  if (cfg.threads === undefined && cfg.keyframeInterval === 'auto') return { threads: defaultThreads(), inferenceThreads: cfg.inferenceThreads ?? 2 };
  if (cfg.threads === undefined) return { threads: 1, inferenceThreads: cfg.inferenceThreads ?? defaultThreads() };
  return { threads: cfg.threads, inferenceThreads: cfg.inferenceThreads ?? 1 };
}

export async function openSegmenter(cfg: SegmenterConfig): Promise<OpenSegmenter> {
  const model = await resolveModel(cfg.model);
  const device = cfg.device ?? 'cpu';
  const layout = threadLayout(cfg);
  const memory = cfg.memory ?? defaultMemoryPlan();
  // Only installed float models get a lean file beside them (a user's own path is left alone).
  const installed = path.dirname(model.path) === modelsDir() && !model.quantized;
  const lean = memory !== 'pattern';
  const modelPath = lean && installed ? await leanModel(model.path) : model.path;
  const segmenter = new (native().Segmenter)({
    modelPath,
    memoryPattern: memory === 'pattern',
    sharedArena: lean,
    memoryReuse: memory !== 'lean',
    device,
    threads: layout.threads,
    cpuThreads: cfg.cpuThreads ?? 1,
    inferenceThreads: layout.inferenceThreads,
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
