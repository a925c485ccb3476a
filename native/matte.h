// Matte: turning the model's mask into what the user asked for (RGBA cut-out, mask, composite).
#pragma once
#include <array>
#include <optional>

#include "image.h"

namespace bgrm {

// Straight (non-premultiplied) RGBA: the source colours with the mask as alpha; where alpha is 0
// the colour is set to black.
Image cutout(const ImageView& rgb, const Image& alpha);

// The foreground blended over a solid colour: out = fg * a + bg * (1 - a), RGB.
Image compositeOnColor(const ImageView& rgb, const Image& alpha, const std::array<uint8_t, 3>& color);

// The foreground blended over an image already resized to the frame's size, RGB.
Image compositeOnImage(const ImageView& rgb, const Image& alpha, const ImageView& background);

// Resizes a background to cover width x height (scale to fill, centre crop).
Image coverResize(const ImageView& background, int width, int height);

}  // namespace bgrm
