// Static int8 quantisation (`bgrm models quantize`, `--fast`): the stages, each in its own file.
//   plan.ts         the recipe, its constants, and the tensors to quantise
//   calibration.ts  calibration frames (images, a video through ffmpeg) as input tensors
//   stats.ts        activation statistics (ONNX Runtime) and the ranges read from them
//   rewrite.ts      the QDQ graph, written atomically
//   bias.ts         output bias correction (the int8 masks fitted to the float model's)
//   fusion.ts       what ONNX Runtime fuses the result into
//   install.ts      installed int8 models, their records, and the model --fast/--best run
export { BINS, DEFAULT_CALIBRATION_FRAMES, MIN_CALIBRATION_FRAMES, QUANTIZER_VERSION, type ModelInputSpec } from './plan';
export { loadCalibration, type CalibrationSet } from './calibration';
export { outlierChannels, percentileRange, type TensorStats } from './stats';
export { quantizeModel, uint8Params, type QuantizeReport } from './rewrite';
export { inspectFusion, type FusionReport } from './fusion';
export { presetModel, installQuantized, readQuantizationRecord, type InstallQuantizedOptions, type InstallQuantizedResult, type QuantizationRecord } from './install';
