// U-2-Net's pre- and post-processing (see model.h).
#include "model.h"

#include <algorithm>

namespace bgrm {

std::vector<float> normaliseToTensor(const Image& im, const std::array<float, 3>& mean, const std::array<float, 3>& sd) {
  const size_t plane = size_t(im.width) * im.height;
  std::vector<float> t(plane * 3);
  const uint8_t maxValue = im.pixels.empty() ? 0 : *std::max_element(im.pixels.begin(), im.pixels.end());
  const float scale = maxValue > 0 ? 1.0f / maxValue : 1.0f;
  const uint8_t* p = im.pixels.data();
  for (size_t i = 0; i < plane; ++i) {
    for (int c = 0; c < 3; ++c) t[c * plane + i] = (p[i * 3 + c] * scale - mean[c]) / sd[c];
  }
  return t;
}

std::vector<float> U2NetFamily::prepare(const Image& resized) const { return normaliseToTensor(resized, mean_, std_); }

Image U2NetFamily::postprocess(const float* pred, int width, int height) const {
  const size_t n = size_t(width) * height;
  float lo = pred[0], hi = pred[0];
  for (size_t i = 1; i < n; ++i) {
    lo = std::min(lo, pred[i]);
    hi = std::max(hi, pred[i]);
  }
  const float range = hi - lo;
  Image mask(width, height, 1);
  for (size_t i = 0; i < n; ++i) {
    const float v = range > 0 ? (pred[i] - lo) / range : 0.0f;
    mask.pixels[i] = uint8_t(std::clamp(v * 255.0f, 0.0f, 255.0f));  // truncates, as rembg's astype(uint8)
  }
  return mask;
}

}  // namespace bgrm
