// Image codecs of the native core: JPEG (libjpeg-turbo) and PNG (libspng) decode, the other formats
// through libvips (formats.h); PNG and JPEG encode.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "image.h"

namespace bgrm {

struct DecodeLimits {
  int64_t maxPixels = 64LL * 1024 * 1024;  // width * height
  int maxSide = 32768;
  // The benchmark's comparison: JPEG and PNG through libvips too, not the fast paths.
  bool viaLibvips = false;
};

enum class ImageFormat { Unknown, Jpeg, Png, Webp, Tiff, Gif, Bmp, Heif };

ImageFormat sniffFormat(const uint8_t* data, size_t size);

// Decodes an image (JPEG, PNG, WebP, TIFF, GIF, BMP, HEIF/AVIF; recognised by content) to 8-bit sRGB,
// EXIF orientation applied. Throws bgrm::Error (ERR_UNSUPPORTED_FORMAT, ERR_DECODE,
// ERR_IMAGE_TOO_LARGE) naming the problem.
Image decodeRgb(const uint8_t* data, size_t size, const DecodeLimits& limits);
// The same, keeping the alpha channel (4 channels; opaque where the image has none).
Image decodeRgba(const uint8_t* data, size_t size, const DecodeLimits& limits);

// Encodes 1 (grey), 3 (RGB) or 4 (RGBA) channel 8-bit pixels as PNG.
// level: compression level 0-12 (libdeflate; 0 stores); filter: "none", "sub", "up", "paeth", "all" (adaptive).
std::vector<uint8_t> encodePng(const ImageView& image, int level, const std::string& filter);

// Encodes RGB (4:2:0) or grey as baseline JPEG, quality 1-100.
std::vector<uint8_t> encodeJpeg(const ImageView& rgb, int quality);

std::string jpegLibraryVersion();
std::string pngLibraryVersion();

}  // namespace bgrm
