// The libvips half of the image formats (see formats.h): a library of its own, loaded by the addon on
// first use. libvips and what it links (about 100 libraries) add some 25 MB to a process's resident
// memory once loaded, which a worker that only reads JPEG, PNG or video never needs.
// The entry points have C names for dlsym; they take and give the addon's C++ types (same compiler,
// same libstdc++) and throw bgrm::Error as the addon's own code does.
#include <vips/vips.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../codecs.h"
#include "../errors.h"
#include "../image.h"

#define BGRM_VIPS_API __attribute__((visibility("default")))

namespace bgrm {

namespace {

std::once_flag vipsOnce;
bool vipsReady = false;

void startVips() {
  std::call_once(vipsOnce, [] {
    if (VIPS_INIT("bgrm") != 0) return;
    // The engine already decodes frames in parallel: one thread per decode, no operation cache.
    vips_concurrency_set(1);
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    // Its warnings (an ignored colour box, a skipped tag) would go to the terminal between frames;
    // what matters fails the load instead (fail_on).
    g_log_set_handler("VIPS", GLogLevelFlags(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO),
                      [](const gchar*, GLogLevelFlags, const gchar*, gpointer) {}, nullptr);
    vipsReady = true;
  });
  if (!vipsReady) throw Error("ERR_DECODE", "cannot start libvips (image decoding for WebP, TIFF, BMP, GIF, HEIF and CMYK JPEG)");
}

struct Unref {
  void operator()(VipsImage* im) const {
    if (im) g_object_unref(im);
  }
};
using VipsPtr = std::unique_ptr<VipsImage, Unref>;

// libvips's last error, cleared; its error buffer is the library's only report.
std::string vipsProblem() {
  std::string text = vips_error_buffer();
  vips_error_clear();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

// Replaces `im` with what `op` makes of it; throws naming the step and the format.
template <typename Op>
void step(VipsPtr& im, const char* what, const char* format, Op op) {
  VipsImage* out = nullptr;
  if (op(im.get(), &out) != 0 || !out) {
    throw Error("ERR_DECODE", std::string("cannot ") + what + " the " + format + " image: " + vipsProblem());
  }
  im.reset(out);
}

}  // namespace

extern "C" BGRM_VIPS_API void bgrm_vips_decode(const uint8_t* data, size_t size, const char* name, const DecodeLimits* limitsIn, int channels,
                                              void (*checkDimensions)(int64_t, int64_t, const DecodeLimits&), Image* result) {
  startVips();
  const DecodeLimits& limits = *limitsIn;
  // The header only: the dimensions are checked before any pixel is decoded.
  VipsPtr im(vips_image_new_from_buffer(data, size, "", "fail_on", VIPS_FAIL_ON_ERROR, nullptr));
  if (!im) throw Error("ERR_DECODE", std::string("corrupt ") + name + " image: " + vipsProblem());
  checkDimensions(vips_image_get_width(im.get()), vips_image_get_height(im.get()), limits);
  step(im, "orient", name, [](VipsImage* in, VipsImage** out) { return vips_autorot(in, out, nullptr); });
  const bool hasIcc = vips_image_get_typeof(im.get(), VIPS_META_ICC_NAME) != 0;
  bool converted = false;
  if (hasIcc) {
    VipsImage* out = nullptr;
    // A damaged profile is not worth losing the picture over: the plain conversion below takes over.
    if (vips_icc_transform(im.get(), &out, "srgb", "embedded", TRUE, "intent", VIPS_INTENT_RELATIVE, nullptr) == 0 && out) {
      im.reset(out);
      converted = true;
    } else {
      vips_error_clear();
    }
  }
  if (!converted || vips_image_get_interpretation(im.get()) != VIPS_INTERPRETATION_sRGB) {
    step(im, "convert to sRGB", name, [](VipsImage* in, VipsImage** out) { return vips_colourspace(in, out, VIPS_INTERPRETATION_sRGB, nullptr); });
  }
  if (vips_image_get_format(im.get()) != VIPS_FORMAT_UCHAR) {
    step(im, "convert to 8 bits", name, [](VipsImage* in, VipsImage** out) { return vips_cast_uchar(in, out, nullptr); });
  }
  const int bands = vips_image_get_bands(im.get());
  if (bands < 3) throw Error("ERR_DECODE", std::string("unexpected ") + name + " image: " + std::to_string(bands) + " bands after conversion to sRGB");
  if (channels == 3 && bands != 3) {
    step(im, "take the colour of", name, [](VipsImage* in, VipsImage** out) { return vips_extract_band(in, out, 0, "n", 3, nullptr); });
  } else if (channels == 4 && bands == 3) {
    step(im, "add opacity to", name, [](VipsImage* in, VipsImage** out) { return vips_bandjoin_const1(in, out, 255.0, nullptr); });
  } else if (channels == 4 && bands > 4) {
    step(im, "take the colour of", name, [](VipsImage* in, VipsImage** out) { return vips_extract_band(in, out, 0, "n", 4, nullptr); });
  }
  const int width = vips_image_get_width(im.get()), height = vips_image_get_height(im.get());
  checkDimensions(width, height, limits);
  Image out(width, height, channels);
  VipsRegion* region = vips_region_new(im.get());
  VipsRect all{0, 0, width, height};
  const int rc = vips_region_prepare(region, &all);
  if (rc == 0) {
    for (int y = 0; y < height; ++y) std::memcpy(out.row(y), VIPS_REGION_ADDR(region, 0, y), out.stride());
  }
  g_object_unref(region);
  if (rc != 0) throw Error("ERR_DECODE", std::string("corrupt or truncated ") + name + " image: " + vipsProblem());
  *result = std::move(out);
}

extern "C" BGRM_VIPS_API void bgrm_vips_encode_webp(const ImageView* view, int quality, std::vector<uint8_t>* result) {
  const ImageView& image = *view;
  startVips();
  VipsPtr im(vips_image_new_from_memory(image.data, image.stride() * size_t(image.height), image.width, image.height, image.channels, VIPS_FORMAT_UCHAR));
  if (!im) throw Error("ERR_ENCODE", "WebP encoding failed: " + vipsProblem());
  void* buf = nullptr;
  size_t len = 0;
  const bool lossless = quality <= 0;
  if (vips_webpsave_buffer(im.get(), &buf, &len, "lossless", lossless ? TRUE : FALSE, "Q", lossless ? 75 : std::min(quality, 100), "effort", 0,
                           "strip", TRUE, nullptr) != 0) {
    throw Error("ERR_ENCODE", "WebP encoding failed: " + vipsProblem());
  }
  std::vector<uint8_t> out(static_cast<uint8_t*>(buf), static_cast<uint8_t*>(buf) + len);
  g_free(buf);
  *result = std::move(out);
}

extern "C" BGRM_VIPS_API void bgrm_vips_version(std::string* result) {
  startVips();
  *result = std::string("libvips ") + vips_version_string();
}

}  // namespace bgrm
