// Every other image format, through libvips: WebP, TIFF, BMP, GIF, HEIF/AVIF, and the JPEGs the fast
// path leaves out (CMYK/YCCK, an embedded ICC profile). Orientation is applied, colour ends in 8-bit
// sRGB, dimensions are checked from the header before any pixel is decoded. Also WebP encoding, and
// the EXIF orientation the JPEG fast path applies itself.
#include "formats.h"

#include <vips/vips.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>

#include "errors.h"

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

uint16_t get16(const uint8_t* p, bool le) { return le ? uint16_t(p[0] | (p[1] << 8)) : uint16_t((p[0] << 8) | p[1]); }
uint32_t get32(const uint8_t* p, bool le) {
  return le ? uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24)
            : (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// The orientation tag (1-8) of an Exif block ("Exif\0\0" then a TIFF header); 1 when absent or damaged.
int exifOrientation(const uint8_t* d, size_t n) {
  if (n < 14 || std::memcmp(d, "Exif\0\0", 6) != 0) return 1;
  const uint8_t* t = d + 6;
  const size_t tn = n - 6;
  const bool le = t[0] == 'I' && t[1] == 'I';
  if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
  if (get16(t + 2, le) != 42) return 1;
  const uint32_t ifd = get32(t + 4, le);
  if (ifd < 8 || size_t(ifd) + 2 > tn) return 1;
  const int entries = get16(t + ifd, le);
  for (int i = 0; i < entries; ++i) {
    const size_t e = size_t(ifd) + 2 + size_t(i) * 12;
    if (e + 12 > tn) return 1;
    if (get16(t + e, le) == 0x0112) {
      const int v = get16(t + e + 8, le);  // SHORT, count 1: the value sits in the entry
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

}  // namespace

ImageFormat sniffFormat(const uint8_t* d, size_t n) {
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::Jpeg;
  if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::Png;
  if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return ImageFormat::Webp;
  if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) return ImageFormat::Tiff;
  if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) return ImageFormat::Gif;
  // BMP: "BM", then the file size, two reserved words and a pixel offset inside the file
  if (n >= 26 && d[0] == 'B' && d[1] == 'M' && get32(d + 10, true) >= 26 && get32(d + 14, true) >= 12 && get32(d + 14, true) <= 124)
    return ImageFormat::Bmp;
  // ISO base media (HEIF, AVIF): a 'ftyp' box whose major brand or compatible brands say image
  if (n >= 16 && std::memcmp(d + 4, "ftyp", 4) == 0) {
    const size_t box = std::min<size_t>(get32(d, false), std::min<size_t>(n, 256));
    for (size_t o = 8; o + 4 <= box; o += 4) {
      if (o == 12) continue;  // minor version
      const char* b = reinterpret_cast<const char*>(d + o);
      for (const char* brand : {"heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif", "avis"}) {
        if (std::memcmp(b, brand, 4) == 0) return ImageFormat::Heif;
      }
    }
  }
  return ImageFormat::Unknown;
}

const char* formatName(ImageFormat f) {
  switch (f) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Webp: return "WebP";
    case ImageFormat::Tiff: return "TIFF";
    case ImageFormat::Gif: return "GIF";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Heif: return "HEIF/AVIF";
    default: return "unknown";
  }
}

JpegMarkers scanJpegMarkers(const uint8_t* d, size_t n) {
  JpegMarkers m;
  size_t i = 2;  // after SOI
  while (i + 4 <= n) {
    if (d[i] != 0xFF) break;
    const uint8_t marker = d[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) break;  // start of scan, end of image: no more headers
    const size_t len = size_t(d[i + 2]) << 8 | d[i + 3];
    if (len < 2 || i + 2 + len > n) break;
    const uint8_t* body = d + i + 4;
    const size_t bodyLen = len - 2;
    if (marker == 0xE1 && m.orientation == 1) m.orientation = exifOrientation(body, bodyLen);
    if (marker == 0xE2 && bodyLen >= 12 && std::memcmp(body, "ICC_PROFILE\0", 12) == 0) m.icc = true;
    i += 2 + len;
  }
  return m;
}

Image orient(Image im, int orientation) {
  if (orientation <= 1 || orientation > 8) return im;
  const int type = im.channels == 4 ? CV_8UC4 : im.channels == 3 ? CV_8UC3 : CV_8UC1;
  const cv::Mat src(im.height, im.width, type, im.pixels.data());
  const bool swap = orientation >= 5;
  Image out(swap ? im.height : im.width, swap ? im.width : im.height, im.channels);
  cv::Mat dst(out.height, out.width, type, out.pixels.data());
  switch (orientation) {
    case 2: cv::flip(src, dst, 1); break;
    case 3: cv::flip(src, dst, -1); break;
    case 4: cv::flip(src, dst, 0); break;
    case 5: cv::transpose(src, dst); break;
    case 6: cv::rotate(src, dst, cv::ROTATE_90_CLOCKWISE); break;
    case 7:  // transverse: transposed, then turned half round
      cv::transpose(src, dst);
      cv::flip(dst, dst, -1);
      break;
    case 8: cv::rotate(src, dst, cv::ROTATE_90_COUNTERCLOCKWISE); break;
  }
  return out;
}

Image decodeWithVips(const uint8_t* data, size_t size, ImageFormat format, const DecodeLimits& limits, int channels,
                     void (*checkDimensions)(int64_t, int64_t, const DecodeLimits&)) {
  startVips();
  const char* name = formatName(format);
  if (format == ImageFormat::Bmp) {
    // BMP goes through ImageMagick: its declared size is checked here before that library sees it
    const int32_t w = int32_t(get32(data + 18, true)), h = int32_t(get32(data + 22, true));
    checkDimensions(std::abs(int64_t(w)), std::abs(int64_t(h)), limits);
  }
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
  return out;
}

std::vector<uint8_t> encodeWebp(const ImageView& image, int quality) {
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
  return out;
}

std::string vipsLibraryVersion() {
  startVips();
  return std::string("libvips ") + vips_version_string();
}

}  // namespace bgrm
