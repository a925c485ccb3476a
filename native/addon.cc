// Registers the bgrm native module.
#include <napi.h>

#include <opencv2/core/utility.hpp>

#include "binding.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Process-wide: OpenCV's own threads would make optical flow depend on scheduling; the engine
  // already runs frames and streams in parallel, so OpenCV runs single-threaded and results repeat.
  cv::setNumThreads(1);
  bgrm::initSegmenter(env, exports);
  bgrm::initHelpers(env, exports);
  return exports;
}

NODE_API_MODULE(bgrm, Init)
