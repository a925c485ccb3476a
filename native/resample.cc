// Separable fixed-point Lanczos resampling, following the arithmetic Pillow documents for its
// 8-bit resize path: per-output-pixel windows, coefficients normalised then quantised to 22 bits.
#include "resample.h"

#include <algorithm>
#include <cmath>

namespace bgrm {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kLanczosSupport = 3.0;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double lanczos(double x) { return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }

// For every output index: first input index, number of taps, and the taps' fixed-point weights.
struct Window {
  int ksize = 0;
  std::vector<int> start, count;
  std::vector<int32_t> weights;  // outSize * ksize
};

Window makeWindow(int inSize, int outSize) {
  const double scale = double(inSize) / outSize;
  const double filterScale = std::max(scale, 1.0);
  const double support = kLanczosSupport * filterScale;
  Window w;
  w.ksize = int(std::ceil(support)) * 2 + 1;
  w.start.resize(outSize);
  w.count.resize(outSize);
  w.weights.assign(size_t(outSize) * w.ksize, 0);
  std::vector<double> k(w.ksize);
  for (int xx = 0; xx < outSize; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterScale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = lanczos((x + xmin - center + 0.5) * ss);
      total += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = (total != 0.0 ? k[x] / total : k[x]) * (1 << kPrecisionBits);
      w.weights[size_t(xx) * w.ksize + x] = int32_t(v < 0 ? std::trunc(v - 0.5) : std::trunc(v + 0.5));
    }
    w.start[xx] = xmin;
    w.count[xx] = xmax;
  }
  return w;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return uint8_t(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Resamples rows [firstRow, firstRow + rows) of src horizontally into dst (rows x outWidth).
void horizontal(const ImageView& src, int firstRow, const Window& w, Image& dst) {
  const int c = src.channels;
  for (int y = 0; y < dst.height; ++y) {
    const uint8_t* in = src.data + size_t(firstRow + y) * src.stride();
    uint8_t* out = dst.row(y);
    for (int xx = 0; xx < dst.width; ++xx) {
      const int32_t* k = &w.weights[size_t(xx) * w.ksize];
      const uint8_t* p = in + size_t(w.start[xx]) * c;
      for (int ch = 0; ch < c; ++ch) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < w.count[xx]; ++x) acc += int32_t(p[x * c + ch]) * k[x];
        out[xx * c + ch] = clip8(acc);
      }
    }
  }
}

void vertical(const ImageView& src, const Window& w, int rowOffset, Image& dst) {
  const int c = src.channels;
  const size_t stride = src.stride();
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < dst.height; ++yy) {
    const int32_t* k = &w.weights[size_t(yy) * w.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const uint8_t* base = src.data + size_t(w.start[yy] - rowOffset) * stride;
    for (int y = 0; y < w.count[yy]; ++y) {
      const uint8_t* in = base + size_t(y) * stride;
      const int32_t ky = k[y];
      for (size_t i = 0; i < stride; ++i) acc[i] += int32_t(in[i]) * ky;
    }
    uint8_t* out = dst.row(yy);
    for (size_t i = 0; i < stride; ++i) out[i] = clip8(acc[i]);
    (void)c;
  }
}

}  // namespace

Image resizeLanczos(const ImageView& src, int outWidth, int outHeight) {
  const bool needH = outWidth != src.width;
  const bool needV = outHeight != src.height;
  if (!needH && !needV) {
    Image copy(src.width, src.height, src.channels);
    std::copy(src.data, src.data + copy.pixels.size(), copy.pixels.begin());
    return copy;
  }
  const Window wv = makeWindow(src.height, outHeight);
  if (!needH) {
    Image out(outWidth, outHeight, src.channels);
    vertical(src, wv, 0, out);
    return out;
  }
  const Window wh = makeWindow(src.width, outWidth);
  // Only the source rows that the vertical pass reads are resampled horizontally.
  const int firstRow = needV ? wv.start.front() : 0;
  const int lastRow = needV ? wv.start.back() + wv.count.back() : src.height;
  Image tmp(outWidth, lastRow - firstRow, src.channels);
  horizontal(src, firstRow, wh, tmp);
  if (!needV) return tmp;
  Image out(outWidth, outHeight, src.channels);
  vertical(view(tmp), wv, firstRow, out);
  return out;
}

}  // namespace bgrm
