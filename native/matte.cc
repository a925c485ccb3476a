// Alpha compositing in 8-bit integer arithmetic (exact rounding, no floats per pixel).
#include "matte.h"

#include <algorithm>
#include <cmath>

#include "resample.h"

namespace bgrm {
namespace {

inline uint8_t blend(uint8_t fg, uint8_t bg, uint8_t a) {
  // (fg*a + bg*(255-a)) / 255, rounded to nearest without a division
  const uint32_t v = uint32_t(fg) * a + uint32_t(bg) * (255 - a) + 128;
  return uint8_t((v + (v >> 8)) >> 8);
}

}  // namespace

Image cutout(const ImageView& rgb, const Image& alpha) {
  Image out(rgb.width, rgb.height, 4);
  const size_t n = size_t(rgb.width) * rgb.height;
  const uint8_t* s = rgb.data;
  const uint8_t* a = alpha.pixels.data();
  uint8_t* d = out.pixels.data();
  for (size_t i = 0; i < n; ++i) {
    // Fully transparent pixels get black colour: invisible either way, and long zero runs make the
    // PNG several times smaller and faster to compress.
    const uint8_t keep = a[i] ? 0xFF : 0x00;
    d[i * 4 + 0] = s[i * 3 + 0] & keep;
    d[i * 4 + 1] = s[i * 3 + 1] & keep;
    d[i * 4 + 2] = s[i * 3 + 2] & keep;
    d[i * 4 + 3] = a[i];
  }
  return out;
}

Image compositeOnColor(const ImageView& rgb, const Image& alpha, const std::array<uint8_t, 3>& color) {
  Image out(rgb.width, rgb.height, 3);
  const size_t n = size_t(rgb.width) * rgb.height;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t a = alpha.pixels[i];
    for (int c = 0; c < 3; ++c) out.pixels[i * 3 + c] = blend(rgb.data[i * 3 + c], color[c], a);
  }
  return out;
}

Image compositeOnImage(const ImageView& rgb, const Image& alpha, const ImageView& bg) {
  Image out(rgb.width, rgb.height, 3);
  const size_t n = size_t(rgb.width) * rgb.height;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t a = alpha.pixels[i];
    for (int c = 0; c < 3; ++c) out.pixels[i * 3 + c] = blend(rgb.data[i * 3 + c], bg.data[i * 3 + c], a);
  }
  return out;
}

Image coverResize(const ImageView& bg, int width, int height) {
  const double scale = std::max(double(width) / bg.width, double(height) / bg.height);
  const int sw = std::max(width, int(std::ceil(bg.width * scale)));
  const int sh = std::max(height, int(std::ceil(bg.height * scale)));
  const Image scaled = resizeLanczos(bg, sw, sh);
  Image out(width, height, 3);
  const int x0 = (sw - width) / 2, y0 = (sh - height) / 2;
  for (int y = 0; y < height; ++y) {
    const uint8_t* src = scaled.row(y + y0) + size_t(x0) * 3;
    std::copy(src, src + size_t(width) * 3, out.row(y));
  }
  return out;
}

}  // namespace bgrm
