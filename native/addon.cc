// Registers the bgrm native module.
#include <napi.h>

#include "binding.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  bgrm::initSegmenter(env, exports);
  bgrm::initHelpers(env, exports);
  return exports;
}

NODE_API_MODULE(bgrm, Init)
