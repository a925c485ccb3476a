// The benchmarks' baseline: the model alone in ONNX Runtime (onnxruntime-node), frames/s on a fixed tensor.
/** Model alone through onnxruntime-node (the same ONNX Runtime library), a fixed input tensor. */
export async function modelOnly(modelPath: string, threads: number, runs: number): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const input = new ort.Tensor('float32', new Float32Array(3 * 320 * 320).map((_, i) => Math.sin(i) * 2), [1, 3, 320, 320]);
  const feeds = { [session.inputNames[0]]: input };
  await session.run(feeds);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await session.run(feeds);
  const fps = runs / ((performance.now() - t0) / 1000);
  await session.release();
  return fps;
}
