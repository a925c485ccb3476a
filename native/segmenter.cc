// ONNX Runtime session set-up (threads, providers, memory, model checks) and one model run; the
// model family (model.h) makes the input tensor and reads the mask.
#include "segmenter.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "errors.h"

namespace bgrm {

Ort::Env& ortEnv() {
  static Ort::Env env(ORT_LOGGING_LEVEL_FATAL, "bgrm");
  return env;
}

std::string ortVersion() { return Ort::GetVersionString(); }

std::vector<std::string> ortProviders() { return Ort::GetAvailableProviders(); }

namespace {

void appendCuda(Ort::SessionOptions& so, int deviceId) {
  const auto providers = ortProviders();
  if (std::find(providers.begin(), providers.end(), "CUDAExecutionProvider") == providers.end()) {
    throw Error("ERR_CUDA_UNAVAILABLE",
                "this ONNX Runtime build (" + ortVersion() +
                    ") has no CUDA execution provider. Install an ONNX Runtime GPU release and rebuild with "
                    "ONNXRUNTIME_ROOT=/path/to/onnxruntime-gpu npm run build:native, or use --device cpu");
  }
  try {
    OrtCUDAProviderOptions cuda{};
    cuda.device_id = deviceId;
    so.AppendExecutionProvider_CUDA(cuda);
  } catch (const Ort::Exception& e) {
    throw Error("ERR_CUDA_UNAVAILABLE",
                std::string("the CUDA execution provider could not be loaded: ") + e.what() +
                    ". It needs libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so beside "
                    "libonnxruntime.so.1 (build/Release/), CUDA 12 and cuDNN 9 libraries on the loader path, and an "
                    "NVIDIA driver; see README 'GPU'. Or use --device cpu");
  }
}

// One CPU arena for every session in the process, extended by exactly what a tensor needs. The
// default per-session arena doubles each extension (1, 2, 4 ... 256 MB): a u2netp run at 320x320
// left 544 MB reserved and most of it touched, against a live peak of about 130 MB.
void useSharedArena(Ort::SessionOptions& so) {
  static std::once_flag once;
  std::call_once(once, [] {
    Ort::ArenaCfg cfg(0 /* no limit */, 1 /* kSameAsRequested */, -1, -1);
    auto info = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    ortEnv().CreateAndRegisterAllocator(info, cfg);
  });
  so.AddConfigEntry("session.use_env_allocators", "1");
}

// Turns off ONNX Runtime's buffer reuse plan; false where it cannot be done safely.
//
// The planner hands a freed buffer to a later tensor of the same size, and then the buffer lives
// from the first tensor to the last: u2netp's 64-channel 320x320 buffers from the first encoder
// stage are kept through the lower stages for the last decoder stage, 126 MiB live in a run whose
// tensors need about 90 MiB at any moment. Without the plan each tensor is freed when its last reader
// is done and the arena reuses the space (measured, two concurrent u2netp runs, onnxruntime 1.23:
// 272 -> 209 MiB over the session, same runs/s). ONNX Runtime's C API has no setter for it (Python's
// SessionOptions.enable_mem_reuse sets the field directly), so it is set here in the options object,
// after checking where it is: the flag sits between enable_mem_pattern and enable_cpu_mem_arena,
// which the API does set, so each of those is toggled through the API and found by the one byte that
// changes. Anything unexpected (not exactly one byte, not two apart, the flag not at its default)
// leaves the options untouched, and the run goes on with the plan, as before.
bool disableMemoryReuse(Ort::SessionOptions& so) {
  constexpr size_t kScan = 128;  // the flags are within the first 64 bytes of onnxruntime::SessionOptions
  auto* bytes = reinterpret_cast<unsigned char*>(static_cast<OrtSessionOptions*>(so));
  auto flagOf = [&](auto off, auto on) -> int {
    std::array<unsigned char, kScan> before{};
    std::copy(bytes, bytes + kScan, before.begin());
    off();
    int found = -1, changed = 0;
    for (size_t i = 0; i < kScan; ++i) {
      if (bytes[i] == before[i]) continue;
      ++changed;
      if (before[i] == 1 && bytes[i] == 0) found = int(i);
    }
    on();
    if (!std::equal(before.begin(), before.end(), bytes)) return -2;  // not restored: unsafe
    return changed == 1 ? found : -1;
  };
  const int pattern = flagOf([&] { so.DisableMemPattern(); }, [&] { so.EnableMemPattern(); });
  const int arena = flagOf([&] { so.DisableCpuMemArena(); }, [&] { so.EnableCpuMemArena(); });
  if (pattern < 0 || arena != pattern + 2 || bytes[pattern + 1] != 1) return false;
  bytes[pattern + 1] = 0;
  return true;
}

}  // namespace

Segmenter::Segmenter(const SegmenterOptions& options)
    : options_(options), family_(std::make_unique<U2NetFamily>(options.mean, options.std)) {
  ortEnv();  // the environment (and its logger) must exist before any provider is appended
  Ort::SessionOptions so;
  so.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  so.SetExecutionMode(ExecutionMode::ORT_SEQUENTIAL);
  if (options.intraOpThreads > 0) so.SetIntraOpNumThreads(options.intraOpThreads);
  so.SetInterOpNumThreads(1);
  // The memory pattern planner reserves one block per concurrent run, sized by a first run made
  // without it, on top of that run's arena: 2 runs of u2netp held 935 MB with it, 730 MB without,
  // at the same frames/s (npm run bench:memory).
  if (!options.memoryReuse && options.device == "cpu") memoryReuseOff_ = disableMemoryReuse(so);
  if (!options.memoryPattern) so.DisableMemPattern();
  if (options.sharedArena && options.device == "cpu") useSharedArena(so);
  // Spinning threads burn the cores that decode/encode need when several stages share a machine.
  so.AddConfigEntry("session.intra_op.allow_spinning", options.allowSpinning ? "1" : "0");
  so.AddConfigEntry("session.inter_op.allow_spinning", options.allowSpinning ? "1" : "0");
  if (options.device == "cuda") {
    appendCuda(so, options.deviceId);
  } else if (options.device != "cpu") {
    throw Error("ERR_INVALID_ARGUMENT", "unknown device '" + options.device + "': use cpu or cuda");
  }
  try {
    session_ = std::make_unique<Ort::Session>(ortEnv(), options.modelPath.c_str(), so);
  } catch (const Ort::Exception& e) {
    if (options.device == "cuda") {
      throw Error("ERR_CUDA_UNAVAILABLE", std::string("cannot start the model on CUDA: ") + e.what());
    }
    throw Error("ERR_MODEL_LOAD", "cannot load model '" + options.modelPath + "': " + e.what() +
                                      ". Check the file (bgrm models list) or fetch it again (bgrm models pull NAME)");
  }

  Ort::AllocatorWithDefaultOptions alloc;
  if (session_->GetInputCount() != 1 || session_->GetOutputCount() < 1) {
    throw Error("ERR_MODEL_MISMATCH", "model must have exactly one input and at least one output; this one has " +
                                          std::to_string(session_->GetInputCount()) + " inputs");
  }
  inputName_ = session_->GetInputNameAllocated(0, alloc).get();
  outputName_ = session_->GetOutputNameAllocated(0, alloc).get();
  const Ort::TypeInfo typeInfo = session_->GetInputTypeInfo(0);  // owns what inInfo views
  const auto inInfo = typeInfo.GetTensorTypeAndShapeInfo();
  const auto shape = inInfo.GetShape();
  if (inInfo.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || shape.size() != 4 ||
      (shape[1] != 3 && shape[1] != -1)) {
    throw Error("ERR_MODEL_MISMATCH", "model input '" + inputName_ +
                                          "' is not a float tensor of shape [N,3,H,W]; it is not a supported "
                                          "segmentation model");
  }
  freeInputSize_ = shape[2] <= 0 && shape[3] <= 0;
  inputHeight_ = shape[2] > 0 ? int(shape[2]) : options.fallbackHeight;
  inputWidth_ = shape[3] > 0 ? int(shape[3]) : options.fallbackWidth;
  if (inputWidth_ <= 0 || inputHeight_ <= 0 || inputWidth_ > 4096 || inputHeight_ > 4096) {
    throw Error("ERR_MODEL_MISMATCH", "model input size " + std::to_string(inputWidth_) + "x" +
                                          std::to_string(inputHeight_) + " is not usable");
  }
}

std::vector<float> Segmenter::prepareInput(const Image& im) const { return family_->prepare(im); }

Image Segmenter::infer(std::vector<float>& input, int width, int height) const {
  if (width <= 0 || height <= 0) width = inputWidth_, height = inputHeight_;
  if ((width != inputWidth_ || height != inputHeight_) && !freeInputSize_) {
    throw Error("ERR_INTERNAL", "this model runs at " + std::to_string(inputWidth_) + "x" + std::to_string(inputHeight_) + " only");
  }
  if (input.size() != size_t(3) * width * height) throw Error("ERR_INTERNAL", "input tensor does not match its size");
  const std::array<int64_t, 4> shape{1, 3, height, width};
  auto mem = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  Ort::Value tensor = Ort::Value::CreateTensor<float>(mem, input.data(), input.size(), shape.data(), shape.size());
  const char* inNames[] = {inputName_.c_str()};
  const char* outNames[] = {outputName_.c_str()};
  std::vector<Ort::Value> outputs;
  try {
    outputs = session_->Run(Ort::RunOptions{nullptr}, inNames, &tensor, 1, outNames, 1);
  } catch (const Ort::Exception& e) {
    throw Error("ERR_INFERENCE", std::string("model run failed: ") + e.what());
  }
  auto info = outputs[0].GetTensorTypeAndShapeInfo();
  const auto oshape = info.GetShape();
  if (oshape.size() < 3) throw Error("ERR_MODEL_MISMATCH", "model output has fewer than 3 dimensions");
  const int oh = int(oshape[oshape.size() - 2]);
  const int ow = int(oshape[oshape.size() - 1]);
  return family_->postprocess(outputs[0].GetTensorData<float>(), ow, oh);  // first channel of the first output
}

}  // namespace bgrm
