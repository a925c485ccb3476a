// Image formats beyond the JPEG and PNG fast paths: content sniffing, EXIF orientation, and the way
// to libvips (WebP, TIFF, BMP, GIF, HEIF/AVIF, and the JPEGs the fast path leaves out: CMYK/YCCK, an
// embedded ICC profile), which lives in a library of its own (native/vips/) loaded on first use.
#include "formats.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>

#include "errors.h"

namespace bgrm {

namespace {

uint16_t get16(const uint8_t* p, bool le) { return le ? uint16_t(p[0] | (p[1] << 8)) : uint16_t((p[0] << 8) | p[1]); }
uint32_t get32(const uint8_t* p, bool le) {
  return le ? uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24)
            : (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// The orientation tag (1-8) of an Exif block ("Exif\0\0" then a TIFF header); 1 when absent or damaged.
int exifOrientation(const uint8_t* d, size_t n) {
  if (n < 14 || std::memcmp(d, "Exif\0\0", 6) != 0) return 1;
  const uint8_t* t = d + 6;
  const size_t tn = n - 6;
  const bool le = t[0] == 'I' && t[1] == 'I';
  if (!le && !(t[0] == 'M' && t[1] == 'M')) return 1;
  if (get16(t + 2, le) != 42) return 1;
  const uint32_t ifd = get32(t + 4, le);
  if (ifd < 8 || size_t(ifd) + 2 > tn) return 1;
  const int entries = get16(t + ifd, le);
  for (int i = 0; i < entries; ++i) {
    const size_t e = size_t(ifd) + 2 + size_t(i) * 12;
    if (e + 12 > tn) return 1;
    if (get16(t + e, le) == 0x0112) {
      const int v = get16(t + e + 8, le);  // SHORT, count 1: the value sits in the entry
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

}  // namespace

ImageFormat sniffFormat(const uint8_t* d, size_t n) {
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::Jpeg;
  if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::Png;
  if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return ImageFormat::Webp;
  if (n >= 4 && (std::memcmp(d, "II*\0", 4) == 0 || std::memcmp(d, "MM\0*", 4) == 0)) return ImageFormat::Tiff;
  if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) return ImageFormat::Gif;
  // BMP: "BM", then the file size, two reserved words and a pixel offset inside the file
  if (n >= 26 && d[0] == 'B' && d[1] == 'M' && get32(d + 10, true) >= 26 && get32(d + 14, true) >= 12 && get32(d + 14, true) <= 124)
    return ImageFormat::Bmp;
  // ISO base media (HEIF, AVIF): a 'ftyp' box whose major brand or compatible brands say image
  if (n >= 16 && std::memcmp(d + 4, "ftyp", 4) == 0) {
    const size_t box = std::min<size_t>(get32(d, false), std::min<size_t>(n, 256));
    for (size_t o = 8; o + 4 <= box; o += 4) {
      if (o == 12) continue;  // minor version
      const char* b = reinterpret_cast<const char*>(d + o);
      for (const char* brand : {"heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif", "avis"}) {
        if (std::memcmp(b, brand, 4) == 0) return ImageFormat::Heif;
      }
    }
  }
  return ImageFormat::Unknown;
}

const char* formatName(ImageFormat f) {
  switch (f) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Webp: return "WebP";
    case ImageFormat::Tiff: return "TIFF";
    case ImageFormat::Gif: return "GIF";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Heif: return "HEIF/AVIF";
    default: return "unknown";
  }
}

JpegMarkers scanJpegMarkers(const uint8_t* d, size_t n) {
  JpegMarkers m;
  size_t i = 2;  // after SOI
  while (i + 4 <= n) {
    if (d[i] != 0xFF) break;
    const uint8_t marker = d[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) break;  // start of scan, end of image: no more headers
    const size_t len = size_t(d[i + 2]) << 8 | d[i + 3];
    if (len < 2 || i + 2 + len > n) break;
    const uint8_t* body = d + i + 4;
    const size_t bodyLen = len - 2;
    if (marker == 0xE1 && m.orientation == 1) m.orientation = exifOrientation(body, bodyLen);
    if (marker == 0xE2 && bodyLen >= 12 && std::memcmp(body, "ICC_PROFILE\0", 12) == 0) m.icc = true;
    i += 2 + len;
  }
  return m;
}

Image orient(Image im, int orientation) {
  if (orientation <= 1 || orientation > 8) return im;
  const int type = im.channels == 4 ? CV_8UC4 : im.channels == 3 ? CV_8UC3 : CV_8UC1;
  const cv::Mat src(im.height, im.width, type, im.pixels.data());
  const bool swap = orientation >= 5;
  Image out(swap ? im.height : im.width, swap ? im.width : im.height, im.channels);
  cv::Mat dst(out.height, out.width, type, out.pixels.data());
  switch (orientation) {
    case 2: cv::flip(src, dst, 1); break;
    case 3: cv::flip(src, dst, -1); break;
    case 4: cv::flip(src, dst, 0); break;
    case 5: cv::transpose(src, dst); break;
    case 6: cv::rotate(src, dst, cv::ROTATE_90_CLOCKWISE); break;
    case 7:  // transverse: transposed, then turned half round
      cv::transpose(src, dst);
      cv::flip(dst, dst, -1);
      break;
    case 8: cv::rotate(src, dst, cv::ROTATE_90_COUNTERCLOCKWISE); break;
  }
  return out;
}

namespace {

// libvips's half (native/vips/formats_vips.cc), loaded beside this addon on first use.
struct VipsFormats {
  void (*decode)(const uint8_t*, size_t, const char*, const DecodeLimits*, int, void (*)(int64_t, int64_t, const DecodeLimits&), Image*);
  void (*encodeWebp)(const ImageView*, int, std::vector<uint8_t>*);
  void (*version)(std::string*);
};

const VipsFormats& vipsFormats(const char* code) {
  static std::once_flag once;
  static VipsFormats api{};
  static std::string problem;
  std::call_once(once, [] {
    // beside this addon: the folder of the file that holds this function
    Dl_info self{};
    std::string dir = ".";
    if (dladdr(reinterpret_cast<void*>(&sniffFormat), &self) && self.dli_fname) {
      const std::string addon = self.dli_fname;
      const size_t slash = addon.rfind('/');
      if (slash != std::string::npos) dir = addon.substr(0, slash);
    }
    const std::string file = dir + "/libbgrm_vips.so";
    void* lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      problem = std::string("cannot load ") + file + " (" + dlerror() + "): it reads WebP, TIFF, BMP, GIF, HEIF and CMYK JPEG and writes WebP. " +
                "Build it with npm run build:native (libvips must be installed: scripts/setup.sh)";
      return;
    }
    api.decode = reinterpret_cast<decltype(api.decode)>(dlsym(lib, "bgrm_vips_decode"));
    api.encodeWebp = reinterpret_cast<decltype(api.encodeWebp)>(dlsym(lib, "bgrm_vips_encode_webp"));
    api.version = reinterpret_cast<decltype(api.version)>(dlsym(lib, "bgrm_vips_version"));
    if (!api.decode || !api.encodeWebp || !api.version) {
      api = VipsFormats{};
      problem = file + " is not this addon's image-format library: rebuild with npm run build:native";
    }
  });
  if (!api.decode) throw Error(code, problem);
  return api;
}

}  // namespace

Image decodeWithVips(const uint8_t* data, size_t size, ImageFormat format, const DecodeLimits& limits, int channels,
                     void (*checkDimensions)(int64_t, int64_t, const DecodeLimits&)) {
  const char* name = formatName(format);
  if (format == ImageFormat::Bmp) {
    // BMP goes through ImageMagick: its declared size is checked here before that library sees it
    const int32_t w = int32_t(get32(data + 18, true)), h = int32_t(get32(data + 22, true));
    checkDimensions(std::abs(int64_t(w)), std::abs(int64_t(h)), limits);
  }
  Image out;
  vipsFormats("ERR_DECODE").decode(data, size, name, &limits, channels, checkDimensions, &out);
  return out;
}

std::vector<uint8_t> encodeWebp(const ImageView& image, int quality) {
  std::vector<uint8_t> out;
  vipsFormats("ERR_ENCODE").encodeWebp(&image, quality, &out);
  return out;
}

std::string vipsLibraryVersion() {
  std::string out;
  vipsFormats("ERR_DECODE").version(&out);
  return out;
}

}  // namespace bgrm
