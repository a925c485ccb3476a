// ONNX Runtime from JavaScript (onnxruntime-node), for the quantiser's statistics and the fusion
// check: the same ONNX Runtime release the native core links.

type OrtModule = typeof import('onnxruntime-node');

/** Loaded on first use, so that a process that never quantises never loads this second binding. */
export function ort(): OrtModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('onnxruntime-node') as OrtModule;
}
