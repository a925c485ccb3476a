// Registers the bgrm native module.
#include <napi.h>

#include <algorithm>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <opencv2/core/utility.hpp>

#include "binding.h"

// glibc serves a block from mmap only above its mmap threshold, and it raises that threshold to
// the size of every mmapped block freed (up to 32 MB). After one large photo, frame-sized buffers
// then come from the per-thread heaps and stay resident once freed: serve held 427 MiB after the
// test photos and 200 requests, against 361 MiB with the threshold fixed. bgrm fixes it at 1 MiB.
// BGRM_MMAP_THRESHOLD=bytes sets another, 0 leaves glibc's own, and glibc's MALLOC_MMAP_THRESHOLD_
// wins when set. Returns the threshold set, or 0 when glibc's stands.
static long tuneMalloc() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) return 0;
  long bytes = 1L << 20;
  if (const char* v = std::getenv("BGRM_MMAP_THRESHOLD"); v != nullptr && *v != '\0') {
    char* end = nullptr;
    const long asked = std::strtol(v, &end, 10);
    if (*end == '\0' && asked >= 0) bytes = asked;
  }
  if (bytes == 0) return 0;
  bytes = std::min(bytes, 32L << 20);  // glibc's largest
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1 ? bytes : 0;
#else
  return 0;
#endif
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mmapThreshold", Napi::Number::New(env, static_cast<double>(tuneMalloc())));
  // Process-wide: OpenCV's own threads would make optical flow depend on scheduling; the engine
  // already runs frames and streams in parallel, so OpenCV runs single-threaded and results repeat.
  cv::setNumThreads(1);
  bgrm::initSegmenter(env, exports);
  bgrm::initHelpers(env, exports);
  return exports;
}

NODE_API_MODULE(bgrm, Init)
