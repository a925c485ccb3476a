// A plain interleaved 8-bit image, the unit every native stage passes along.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bgrm {

struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;  // 1 (grey/mask), 3 (RGB) or 4 (RGBA)
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int w, int h, int c) : width(w), height(h), channels(c), pixels(size_t(w) * h * c) {}
  size_t stride() const { return size_t(width) * channels; }
  uint8_t* row(int y) { return pixels.data() + size_t(y) * stride(); }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * stride(); }
};

// A borrowed view of pixels owned elsewhere (a Node Buffer kept alive by the caller).
struct ImageView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int channels = 0;
  size_t stride() const { return size_t(width) * channels; }
};

inline ImageView view(const Image& im) { return {im.pixels.data(), im.width, im.height, im.channels}; }

}  // namespace bgrm
