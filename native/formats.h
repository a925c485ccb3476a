// Image formats beyond the JPEG and PNG fast paths (libvips), content sniffing, EXIF orientation,
// and WebP encoding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "codecs.h"
#include "image.h"

namespace bgrm {

const char* formatName(ImageFormat format);

// What the JPEG fast path needs from the headers before the scan: the EXIF orientation (1-8) and
// whether an ICC profile is embedded (then libvips converts the colours).
struct JpegMarkers {
  int orientation = 1;
  bool icc = false;
};
JpegMarkers scanJpegMarkers(const uint8_t* data, size_t size);

// The image as it is meant to be seen, for an EXIF orientation 1-8.
Image orient(Image image, int orientation);

// Decodes any format libvips reads to 8-bit sRGB with `channels` (3 or 4), oriented; the header's
// dimensions go through `checkDimensions` before the pixels are decoded.
Image decodeWithVips(const uint8_t* data, size_t size, ImageFormat format, const DecodeLimits& limits, int channels,
                     void (*checkDimensions)(int64_t, int64_t, const DecodeLimits&));

// WebP with alpha kept (1, 3 or 4 channels); quality 1-100 is lossy, 0 lossless.
std::vector<uint8_t> encodeWebp(const ImageView& image, int quality);

std::string vipsLibraryVersion();

}  // namespace bgrm
