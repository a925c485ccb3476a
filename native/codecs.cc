// JPEG/PNG decoding into RGB and PNG encoding; every failure becomes a bgrm::Error with a code.
#include "codecs.h"

#include <spng.h>
#include <turbojpeg.h>
#include <zlib.h>

#include <memory>

#include "errors.h"

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

Image decodeJpeg(const uint8_t* data, size_t size, const DecodeLimits& limits, int channels) {
  std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitDecompress(), tjDestroy);
  if (!tj) throw Error("ERR_DECODE", "cannot initialise the JPEG decoder");
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.get(), data, (unsigned long)size, &width, &height, &subsamp, &colorspace) != 0) {
    throw Error("ERR_DECODE", std::string("corrupt JPEG header: ") + tjGetErrorStr2(tj.get()));
  }
  checkDimensions(width, height, limits);
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

ImageFormat sniffFormat(const uint8_t* d, size_t n) {
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::Jpeg;
  if (n >= 8 && d[0] == 0x89 && d[1] == 'P' && d[2] == 'N' && d[3] == 'G' && d[4] == 0x0D && d[5] == 0x0A &&
      d[6] == 0x1A && d[7] == 0x0A)
    return ImageFormat::Png;
  return ImageFormat::Unknown;
}

namespace {

Image decodeAny(const uint8_t* data, size_t size, const DecodeLimits& limits, int channels) {
  if (size == 0) throw Error("ERR_DECODE", "empty input: no image bytes");
  switch (sniffFormat(data, size)) {
    case ImageFormat::Jpeg:
      return decodeJpeg(data, size, limits, channels);
    case ImageFormat::Png:
      return decodePng(data, size, limits, channels);
    default:
      throw Error("ERR_UNSUPPORTED_FORMAT", "not a JPEG or PNG image (unknown signature); convert it to JPEG or PNG first");
  }
}

}  // namespace

Image decodeRgb(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  return decodeAny(data, size, limits, 3);
}

Image decodeRgba(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  return decodeAny(data, size, limits, 4);
}

std::vector<uint8_t> encodePng(const ImageView& image, int level, const std::string& filter) {
  std::unique_ptr<spng_ctx, void (*)(spng_ctx*)> ctx(spng_ctx_new(SPNG_CTX_ENCODER), spng_ctx_free);
  if (!ctx) throw Error("ERR_ENCODE", "cannot initialise the PNG encoder");
  spng_set_option(ctx.get(), SPNG_ENCODE_TO_BUFFER, 1);
  spng_set_option(ctx.get(), SPNG_IMG_COMPRESSION_LEVEL, level);
  int choice = SPNG_FILTER_CHOICE_SUB;
  if (filter == "none") choice = SPNG_FILTER_CHOICE_NONE;
  else if (filter == "up") choice = SPNG_FILTER_CHOICE_UP;
  else if (filter == "paeth") choice = SPNG_FILTER_CHOICE_PAETH;
  else if (filter == "all") choice = SPNG_FILTER_CHOICE_ALL;
  spng_set_option(ctx.get(), SPNG_FILTER_CHOICE, choice);
  // Filtered image data compresses best with the default strategy; raw data with RLE-ish settings.
  spng_set_option(ctx.get(), SPNG_IMG_COMPRESSION_STRATEGY, choice == SPNG_FILTER_CHOICE_NONE ? Z_DEFAULT_STRATEGY : Z_FILTERED);
  spng_ihdr ihdr{};
  ihdr.width = uint32_t(image.width);
  ihdr.height = uint32_t(image.height);
  ihdr.bit_depth = 8;
  ihdr.color_type = image.channels == 1   ? SPNG_COLOR_TYPE_GRAYSCALE
                    : image.channels == 3 ? SPNG_COLOR_TYPE_TRUECOLOR
                                          : SPNG_COLOR_TYPE_TRUECOLOR_ALPHA;
  spng_set_ihdr(ctx.get(), &ihdr);
  int rc = spng_encode_image(ctx.get(), image.data, image.stride() * image.height, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  if (rc != 0) throw Error("ERR_ENCODE", std::string("PNG encoding failed: ") + spng_strerror(rc));
  size_t len = 0;
  int err = 0;
  void* buf = spng_get_png_buffer(ctx.get(), &len, &err);
  if (!buf || err != 0) throw Error("ERR_ENCODE", std::string("PNG encoding failed: ") + spng_strerror(err));
  std::vector<uint8_t> out(static_cast<uint8_t*>(buf), static_cast<uint8_t*>(buf) + len);
  free(buf);
  return out;
}

std::string jpegLibraryVersion() {
#ifdef LIBJPEG_TURBO_VERSION
  return "libjpeg-turbo " LIBJPEG_TURBO_VERSION;
#else
  return "libjpeg-turbo (TurboJPEG API " + std::to_string(TJ_NUMPF) + " pixel formats)";
#endif
}

std::string pngLibraryVersion() { return std::string("libspng ") + spng_version_string() + ", zlib " + zlibVersion(); }

}  // namespace bgrm
