// The Segmenter: one ONNX Runtime session per model, created once and reused for every frame.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "image.h"
#include "model.h"

namespace bgrm {

struct SegmenterOptions {
  std::string modelPath;
  std::string device = "cpu";  // "cpu" or "cuda"
  int deviceId = 0;
  int intraOpThreads = 0;  // 0: ONNX Runtime's default (one per core)
  bool allowSpinning = false;
  // Memory (see Segmenter::Segmenter): ONNX Runtime's memory pattern planner, and one process-wide
  // arena that grows by what is asked instead of a per-session one that doubles.
  bool memoryPattern = false;
  bool sharedArena = true;
  // ONNX Runtime's plan that hands one tensor's buffer to a later one of the same size (CPU only;
  // see disableMemoryReuse in segmenter.cc).
  bool memoryReuse = false;
  // Input size used when the model's own input shape is dynamic.
  int fallbackWidth = 320;
  int fallbackHeight = 320;
  std::array<float, 3> mean = kImageNetMean;
  std::array<float, 3> std = kImageNetStd;
};

class Segmenter {
 public:
  explicit Segmenter(const SegmenterOptions& options);

  int inputWidth() const { return inputWidth_; }
  int inputHeight() const { return inputHeight_; }
  // The model's input height and width are free (any multiple of 32 runs): a region of a frame can
  // be run at its own size. inputWidth/Height are then the full frame's size.
  bool freeInputSize() const { return freeInputSize_; }
  const std::string& inputName() const { return inputName_; }
  const std::string& outputName() const { return outputName_; }
  const SegmenterOptions& options() const { return options_; }
  // The buffer reuse plan was asked off and is off (false: it runs, asked for or not settable).
  bool memoryReuseOff() const { return memoryReuseOff_; }

  // RGB image already resized to the input size -> the model family's input tensor (model.h).
  std::vector<float> prepareInput(const Image& resized) const;

  // Runs the model on a tensor of `width` x `height` (0: the input size); returns the family's 8-bit
  // mask of its first output (the same size). Thread-safe (ONNX Runtime sessions allow concurrent Run).
  Image infer(std::vector<float>& input, int width = 0, int height = 0) const;

 private:
  SegmenterOptions options_;
  std::unique_ptr<ModelFamily> family_;  // U-2-Net's pre/post-processing (the only family so far)
  std::unique_ptr<Ort::Session> session_;
  std::string inputName_, outputName_;
  int inputWidth_ = 0, inputHeight_ = 0;
  bool freeInputSize_ = false;
  bool memoryReuseOff_ = false;
};

Ort::Env& ortEnv();
std::string ortVersion();
std::vector<std::string> ortProviders();

}  // namespace bgrm
