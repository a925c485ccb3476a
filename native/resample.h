// Lanczos resampling that reproduces Pillow's Image.resize(LANCZOS) on 8-bit images bit for bit,
// so that bgrm's model input and mask match rembg's.
#pragma once
#include "image.h"

namespace bgrm {

// Resizes an 8-bit image (any channel count) with a=3 Lanczos whose support widens by the scale
// factor when shrinking (an antialiasing low-pass), in 22-bit fixed point, horizontal pass first.
Image resizeLanczos(const ImageView& src, int outWidth, int outHeight);

}  // namespace bgrm
