// JPEG/PNG decoding into RGB and PNG encoding; every failure becomes a bgrm::Error with a code.
#include "codecs.h"

#include <spng.h>
#include <turbojpeg.h>
#include <libdeflate.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>

#include <memory>

#include "errors.h"
#include "formats.h"

namespace bgrm {
namespace {

void checkDimensions(int64_t width, int64_t height, const DecodeLimits& limits) {
  if (width <= 0 || height <= 0) throw Error("ERR_DECODE", "image has no pixels (width or height is 0)");
  if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels) {
    throw Error("ERR_IMAGE_TOO_LARGE", "image is " + std::to_string(width) + "x" + std::to_string(height) +
                                           ", over the limit of " + std::to_string(limits.maxPixels) +
                                           " pixels / " + std::to_string(limits.maxSide) +
                                           " per side; downscale it or raise --max-pixels");
  }
}

// The fast path; an empty image when the JPEG is CMYK or YCCK (libjpeg-turbo would hand back ink
// values, not colours), which libvips then converts.
Image decodeJpeg(const uint8_t* data, size_t size, const DecodeLimits& limits, int channels) {
  std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitDecompress(), tjDestroy);
  if (!tj) throw Error("ERR_DECODE", "cannot initialise the JPEG decoder");
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.get(), data, (unsigned long)size, &width, &height, &subsamp, &colorspace) != 0) {
    throw Error("ERR_DECODE", std::string("corrupt JPEG header: ") + tjGetErrorStr2(tj.get()));
  }
  checkDimensions(width, height, limits);
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) return Image();
  Image out(width, height, channels);
  // Stop on warnings too: libjpeg reports a truncated file as a warning and would fill the rest grey.
  if (tjDecompress2(tj.get(), data, (unsigned long)size, out.pixels.data(), width, width * channels, height, channels == 4 ? TJPF_RGBA : TJPF_RGB,
                    TJFLAG_STOPONWARNING) != 0) {
    const bool truncated = tjGetErrorCode(tj.get()) == TJERR_WARNING;
    throw Error("ERR_DECODE", std::string(truncated ? "truncated or damaged JPEG: " : "corrupt JPEG: ") +
                                  tjGetErrorStr2(tj.get()));
  }
  return out;
}

// Does a PNG carry an ICC profile (iCCP) or EXIF (eXIf, which may hold an orientation) before its
// pixels? A walk over the chunk headers, bounded by the buffer.
bool pngNeedsLibvips(const uint8_t* data, size_t size) {
  size_t at = 8;
  while (at + 8 <= size) {
    const size_t len = size_t(data[at]) << 24 | size_t(data[at + 1]) << 16 | size_t(data[at + 2]) << 8 | data[at + 3];
    const uint8_t* type = data + at + 4;
    if (std::memcmp(type, "IDAT", 4) == 0 || std::memcmp(type, "IEND", 4) == 0) return false;
    if (std::memcmp(type, "iCCP", 4) == 0 || std::memcmp(type, "eXIf", 4) == 0) return true;
    if (len > size) return false;
    at += 12 + len;
  }
  return false;
}

Image decodePng(const uint8_t* data, size_t size, const DecodeLimits& limits, int channels) {
  std::unique_ptr<spng_ctx, void (*)(spng_ctx*)> ctx(spng_ctx_new(0), spng_ctx_free);
  if (!ctx) throw Error("ERR_DECODE", "cannot initialise the PNG decoder");
  spng_set_crc_action(ctx.get(), SPNG_CRC_ERROR, SPNG_CRC_ERROR);
  spng_set_chunk_limits(ctx.get(), 16 * 1024 * 1024, 64 * 1024 * 1024);
  spng_set_image_limits(ctx.get(), limits.maxSide, limits.maxSide);
  spng_set_png_buffer(ctx.get(), data, size);
  spng_ihdr ihdr{};
  int rc = spng_get_ihdr(ctx.get(), &ihdr);
  if (rc != 0) {
    if (rc == SPNG_EWIDTH || rc == SPNG_EHEIGHT || rc == SPNG_EUSER_WIDTH || rc == SPNG_EUSER_HEIGHT) {
      throw Error("ERR_IMAGE_TOO_LARGE", std::string("PNG dimensions over the limit: ") + spng_strerror(rc));
    }
    throw Error("ERR_DECODE", std::string("corrupt PNG header: ") + spng_strerror(rc));
  }
  checkDimensions(ihdr.width, ihdr.height, limits);
  size_t outSize = 0;
  const int fmt = channels == 4 ? SPNG_FMT_RGBA8 : SPNG_FMT_RGB8;
  rc = spng_decoded_image_size(ctx.get(), fmt, &outSize);
  if (rc != 0) throw Error("ERR_DECODE", std::string("unsupported PNG: ") + spng_strerror(rc));
  Image out(int(ihdr.width), int(ihdr.height), channels);
  if (outSize != out.pixels.size()) throw Error("ERR_DECODE", "unexpected PNG decoded size");
  rc = spng_decode_image(ctx.get(), out.pixels.data(), outSize, fmt, SPNG_DECODE_TRNS);
  if (rc != 0) throw Error("ERR_DECODE", std::string("corrupt or truncated PNG: ") + spng_strerror(rc));
  return out;
}

}  // namespace

namespace {

Image decodeAny(const uint8_t* data, size_t size, const DecodeLimits& limits, int channels) {
  if (size == 0) throw Error("ERR_DECODE", "empty input: no image bytes");
  const ImageFormat format = sniffFormat(data, size);
  if (limits.viaLibvips && format != ImageFormat::Unknown) return decodeWithVips(data, size, format, limits, channels, checkDimensions);
  switch (format) {
    case ImageFormat::Jpeg: {
      // The fast path (libjpeg-turbo) takes YCbCr and grey JPEGs without a colour profile; CMYK,
      // YCCK and profiled ones go through libvips, which converts them to sRGB.
      const JpegMarkers markers = scanJpegMarkers(data, size);
      if (!markers.icc) {
        Image image = decodeJpeg(data, size, limits, channels);
        if (!image.pixels.empty()) return orient(std::move(image), markers.orientation);
      }
      return decodeWithVips(data, size, ImageFormat::Jpeg, limits, channels, checkDimensions);
    }
    case ImageFormat::Png:
      // a colour profile or EXIF orientation: libvips converts and orients
      if (pngNeedsLibvips(data, size)) return decodeWithVips(data, size, ImageFormat::Png, limits, channels, checkDimensions);
      return decodePng(data, size, limits, channels);
    case ImageFormat::Unknown:
      throw Error("ERR_UNSUPPORTED_FORMAT",
                  "not an image bgrm reads (unknown signature); it reads JPEG, PNG, WebP, TIFF, BMP, GIF, HEIF/HEIC and AVIF");
    default:
      return decodeWithVips(data, size, format, limits, channels, checkDimensions);
  }
}

}  // namespace

Image decodeRgb(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  return decodeAny(data, size, limits, 3);
}

Image decodeRgba(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  return decodeAny(data, size, limits, 4);
}

namespace {

// PNG writing: rows are filtered here and compressed with libdeflate, several times faster than
// zlib at the low levels that suit per-frame output (see npm run bench for the measured table).

void put32(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(uint8_t(v >> 24));
  out.push_back(uint8_t(v >> 16));
  out.push_back(uint8_t(v >> 8));
  out.push_back(uint8_t(v));
}

void putChunk(std::vector<uint8_t>& out, const char* type, const uint8_t* data, size_t len) {
  put32(out, uint32_t(len));
  const size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  if (len) out.insert(out.end(), data, data + len);
  put32(out, libdeflate_crc32(0, out.data() + start, len + 4));
}

inline uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return uint8_t(pa <= pb && pa <= pc ? a : (pb <= pc ? b : c));
}

enum Filter { kNone = 0, kSub = 1, kUp = 2, kPaeth = 4 };

void filterRow(int type, const uint8_t* row, const uint8_t* prev, size_t n, int bpp, uint8_t* out) {
  switch (type) {
    case kNone:
      std::memcpy(out, row, n);
      break;
    case kSub:
      for (size_t i = 0; i < n; ++i) out[i] = uint8_t(row[i] - (i >= size_t(bpp) ? row[i - bpp] : 0));
      break;
    case kUp:
      for (size_t i = 0; i < n; ++i) out[i] = uint8_t(row[i] - (prev ? prev[i] : 0));
      break;
    case kPaeth:
      for (size_t i = 0; i < n; ++i) {
        const int a = i >= size_t(bpp) ? row[i - bpp] : 0;
        const int b = prev ? prev[i] : 0;
        const int c = (prev && i >= size_t(bpp)) ? prev[i - bpp] : 0;
        out[i] = uint8_t(row[i] - paeth(a, b, c));
      }
      break;
  }
}

uint64_t cost(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i] < 128 ? p[i] : 256 - p[i];
  return s;
}

struct CompressorCache {
  int level = -1;
  libdeflate_compressor* c = nullptr;
  ~CompressorCache() {
    if (c) libdeflate_free_compressor(c);
  }
  libdeflate_compressor* get(int lvl) {
    if (lvl != level) {
      if (c) libdeflate_free_compressor(c);
      c = libdeflate_alloc_compressor(lvl);
      level = lvl;
    }
    return c;
  }
};

}  // namespace

std::vector<uint8_t> encodePng(const ImageView& image, int level, const std::string& filter) {
  const int bpp = image.channels;
  if (bpp != 1 && bpp != 3 && bpp != 4) throw Error("ERR_ENCODE", "PNG encoding needs 1, 3 or 4 channels");
  const size_t n = image.stride();
  int type = kUp;
  if (filter == "none") type = kNone;
  else if (filter == "sub") type = kSub;
  else if (filter == "paeth") type = kPaeth;
  const bool adaptive = filter == "all";
  std::vector<uint8_t> raw((n + 1) * image.height);
  std::vector<uint8_t> trial(adaptive ? n : 0);
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* row = image.data + y * n;
    const uint8_t* prev = y > 0 ? row - n : nullptr;
    uint8_t* out = raw.data() + y * (n + 1);
    if (adaptive) {
      // the minimum-sum-of-absolute-differences heuristic, as libpng's encoder uses
      uint64_t best = UINT64_MAX;
      for (int t : {kNone, kSub, kUp, kPaeth}) {
        filterRow(t, row, prev, n, bpp, trial.data());
        const uint64_t c = cost(trial.data(), n);
        if (c < best) {
          best = c;
          out[0] = uint8_t(t);
          std::memcpy(out + 1, trial.data(), n);
        }
      }
    } else {
      out[0] = uint8_t(type);
      filterRow(type, row, prev, n, bpp, out + 1);
    }
  }
  thread_local CompressorCache cache;
  libdeflate_compressor* comp = cache.get(std::clamp(level, 0, 12));
  if (!comp) throw Error("ERR_ENCODE", "cannot initialise the PNG compressor");
  std::vector<uint8_t> z(libdeflate_zlib_compress_bound(comp, raw.size()));
  const size_t zlen = libdeflate_zlib_compress(comp, raw.data(), raw.size(), z.data(), z.size());
  if (zlen == 0) throw Error("ERR_ENCODE", "PNG compression failed");

  std::vector<uint8_t> out;
  out.reserve(zlen + 64);
  const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  out.insert(out.end(), sig, sig + 8);
  uint8_t ihdr[13];
  const uint32_t w = uint32_t(image.width), h = uint32_t(image.height);
  for (int i = 0; i < 4; ++i) {
    ihdr[i] = uint8_t(w >> (24 - 8 * i));
    ihdr[4 + i] = uint8_t(h >> (24 - 8 * i));
  }
  ihdr[8] = 8;                                           // bit depth
  ihdr[9] = uint8_t(bpp == 1 ? 0 : (bpp == 3 ? 2 : 6));  // grey, RGB, RGBA
  ihdr[10] = ihdr[11] = ihdr[12] = 0;                    // deflate, adaptive filtering, no interlace
  putChunk(out, "IHDR", ihdr, sizeof ihdr);
  putChunk(out, "IDAT", z.data(), zlen);
  putChunk(out, "IEND", nullptr, 0);
  return out;
}

std::vector<uint8_t> encodeJpeg(const ImageView& rgb, int quality) {
  if (rgb.channels != 3 && rgb.channels != 1) throw Error("ERR_ENCODE", "JPEG has no alpha: composite the cut-out on a background first");
  const bool grey = rgb.channels == 1;
  std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitCompress(), tjDestroy);
  if (!tj) throw Error("ERR_ENCODE", "cannot initialise the JPEG encoder");
  unsigned char* buf = nullptr;
  unsigned long len = 0;
  if (tjCompress2(tj.get(), rgb.data, rgb.width, int(rgb.stride()), rgb.height, grey ? TJPF_GRAY : TJPF_RGB, &buf, &len, grey ? TJSAMP_GRAY : TJSAMP_420,
                  std::clamp(quality, 1, 100), 0) != 0) {
    if (buf) tjFree(buf);
    throw Error("ERR_ENCODE", std::string("JPEG encoding failed: ") + tjGetErrorStr2(tj.get()));
  }
  std::vector<uint8_t> out(buf, buf + len);
  tjFree(buf);
  return out;
}

std::string jpegLibraryVersion() {
#ifdef LIBJPEG_TURBO_VERSION
  return "libjpeg-turbo " LIBJPEG_TURBO_VERSION;
#else
  return "libjpeg-turbo (TurboJPEG API " + std::to_string(TJ_NUMPF) + " pixel formats)";
#endif
}

std::string pngLibraryVersion() { return std::string("libspng ") + spng_version_string() + " (decode), libdeflate " + LIBDEFLATE_VERSION_STRING + " (encode)"; }

}  // namespace bgrm
