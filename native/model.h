// What a model family does around its network: the input tensor it wants from a resized RGB image,
// and the 8-bit mask it gives from its first output. The Segmenter runs the session; a new family
// (another normalisation, another output) is a new implementation here, not an edit of the core.
#pragma once
#include <array>
#include <memory>
#include <vector>

#include "image.h"

namespace bgrm {

// The ImageNet normalisation U-2-Net models were trained with (a model's manifest may give its own).
inline constexpr std::array<float, 3> kImageNetMean{0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd{0.229f, 0.224f, 0.225f};

class ModelFamily {
 public:
  virtual ~ModelFamily() = default;
  // RGB image already resized to the input size -> NCHW float tensor data.
  virtual std::vector<float> prepare(const Image& resized) const = 0;
  // The first output's first channel (width x height floats) -> an 8-bit mask of that size.
  virtual Image postprocess(const float* output, int width, int height) const = 0;
};

// U-2-Net and its relatives (u2netp, silueta, IS-Net), as rembg runs them: the input divided by the
// image's maximum, then mean/std per channel; the output min-max normalised and truncated to 8 bits.
class U2NetFamily : public ModelFamily {
 public:
  U2NetFamily(std::array<float, 3> mean, std::array<float, 3> std) : mean_(mean), std_(std) {}
  std::vector<float> prepare(const Image& resized) const override;
  Image postprocess(const float* output, int width, int height) const override;

 private:
  std::array<float, 3> mean_, std_;
};

// The normalisation U2NetFamily::prepare applies, for any mean/std (calibration uses it too).
std::vector<float> normaliseToTensor(const Image& resized, const std::array<float, 3>& mean, const std::array<float, 3>& sd);

}  // namespace bgrm
