// The models a `bgrm serve` holds: the default one, loaded at start (readiness waits for it), and
// up to three more loaded on first request by name, each once, shared by every request.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { knownModels, modelsDir } from '../models';
import type { Metrics } from '../metrics';
import { openSegmenter, type OpenSegmenter, type SegmenterConfig } from '../segmenter';
import { HttpError } from './http';

const MAX_MODELS = 4;
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export class LoadedModels {
  private readonly segmenters = new Map<string, Promise<OpenSegmenter>>();
  /** The default model, loading or loaded. */
  readonly default: Promise<OpenSegmenter>;
  loaded = false;

  constructor(
    private readonly cfg: SegmenterConfig,
    private readonly metrics: Metrics,
    private readonly onnxruntime: string,
  ) {
    this.default = this.get(cfg.model);
    this.default.then(() => (this.loaded = true), () => undefined);
  }

  /** Refuses a request's model= value that cannot name a model (before the request takes a slot). */
  check(name: string): void {
    if (name !== this.cfg.model && !MODEL_NAME.test(name)) throw new HttpError(400, 'ERR_BAD_REQUEST', `model=${name}: give a model name (GET /v1/models)`);
  }

  /** The model of this name (a request's model= parameter), loaded on first use. */
  get(name: string): Promise<OpenSegmenter> {
    let s = this.segmenters.get(name);
    if (!s) {
      if (this.segmenters.size >= MAX_MODELS) throw new HttpError(400, 'ERR_TOO_MANY_MODELS', `this server already holds ${MAX_MODELS} models; use one of those`);
      s = openSegmenter({ ...this.cfg, model: name });
      this.segmenters.set(name, s);
      s.then(
        (o) => this.metrics.modelInfo.set({ model: o.model.name, onnxruntime: this.onnxruntime, device: o.info.device }, 1),
        () => this.segmenters.delete(name),
      );
    }
    return s;
  }

  /** GET /v1/models: the known models, which are installed, which are loaded here. */
  async list(): Promise<unknown> {
    const list = await knownModels();
    const installed = await Promise.all(list.map((m) => fs.access(path.join(modelsDir(), m.file)).then(() => true, () => false)));
    return { default: this.cfg.model, models: list.map((m, i) => ({ name: m.name, installed: installed[i], loaded: this.segmenters.has(m.name) })) };
  }

  async closeAll(): Promise<void> {
    for (const s of this.segmenters.values()) (await s.catch(() => undefined))?.segmenter.close();
  }
}
