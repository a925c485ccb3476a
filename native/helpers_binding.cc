// Module-level helpers: library versions, ONNX Runtime providers, one-off decode/encode workers.
#include <algorithm>
#include <memory>

#include "binding.h"
#include "codecs.h"
#include "errors.h"
#include "formats.h"
#include "resample.h"
#include "segmenter.h"

namespace bgrm {

Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

namespace {

Napi::Value versions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("onnxruntime", ortVersion());
  o.Set("jpeg", jpegLibraryVersion());
  o.Set("png", pngLibraryVersion());
  // libvips loads on first use (formats.cc): a worker or server asking for the runtime's version
  // does not load it; reading `images` does
  o.DefineProperty(Napi::PropertyDescriptor::Accessor(
      env, o, "images",
      [](const Napi::CallbackInfo& i) -> Napi::Value {
        try {
          return Napi::String::New(i.Env(), vipsLibraryVersion());
        } catch (const Error& e) {
          return Napi::String::New(i.Env(), std::string("unavailable: ") + e.what());
        }
      },
      napi_enumerable));
  o.Set("napi", Napi::Number::New(env, NAPI_VERSION));
  return o;
}

// imageFormat(buffer) -> 'JPEG' | 'PNG' | 'WebP' | ... | null: what the first bytes say the file is.
Napi::Value imageFormat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) throw makeError(env, "ERR_INVALID_ARGUMENT", "imageFormat(buffer) needs a Buffer");
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  const ImageFormat f = sniffFormat(buf.Data(), buf.Length());
  return f == ImageFormat::Unknown ? env.Null() : Napi::Value(Napi::String::New(env, formatName(f)));
}

Napi::Value providers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto list = ortProviders();
  Napi::Array arr = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); ++i) arr.Set(uint32_t(i), list[i]);
  return arr;
}

// An async worker that reads a Node Buffer (kept alive, not copied) and settles a promise; a
// failure carries the core's error code (fallback: `fallbackCode`).
class BufferWorker : public Napi::AsyncWorker {
 public:
  BufferWorker(Napi::Env env, Napi::Buffer<uint8_t> buf, DecodeLimits limits, std::string fallbackCode = "ERR_DECODE")
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), limits_(limits),
        fallbackCode_(std::move(fallbackCode)) {
    ref_ = Napi::Persistent(buf);
    data_ = buf.Data();
    size_ = buf.Length();
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      run();
    } catch (const Error& e) {
      code_ = e.code();
      SetError(e.what());
    }
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(makeError(Env(), code_.empty() ? fallbackCode_ : code_, e.Message()).Value());
  }

 protected:
  virtual void run() = 0;  // on the worker thread; throws bgrm::Error
  Napi::Promise::Deferred deferred_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  DecodeLimits limits_;

 private:
  Napi::Reference<Napi::Buffer<uint8_t>> ref_;
  std::string fallbackCode_;
  std::string code_;
};

// Decodes an image to raw RGB on a worker thread (used for background images, read once).
class DecodeWorker : public BufferWorker {
 public:
  DecodeWorker(Napi::Env env, Napi::Buffer<uint8_t> buf, DecodeLimits limits, int channels)
      : BufferWorker(env, buf, limits), channels_(channels) {}
  void run() override { image_ = channels_ == 4 ? decodeRgba(data_, size_, limits_) : decodeRgb(data_, size_, limits_); }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    auto* px = new std::vector<uint8_t>(std::move(image_.pixels));
    o.Set("data", Napi::Buffer<uint8_t>::New(env, px->data(), px->size(),
                                             [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, px));
    o.Set("width", image_.width);
    o.Set("height", image_.height);
    o.Set("channels", image_.channels);
    deferred_.Resolve(o);
  }

 private:
  int channels_;
  Image image_;
};

DecodeLimits limitsFrom(const Napi::Value& v) {
  DecodeLimits limits;
  if (v.IsObject()) {
    Napi::Object o = v.As<Napi::Object>();
    if (o.Has("maxPixels")) limits.maxPixels = int64_t(o.Get("maxPixels").As<Napi::Number>().DoubleValue());
    if (o.Has("maxSide")) limits.maxSide = o.Get("maxSide").As<Napi::Number>().Int32Value();
    limits.viaLibvips = o.Get("via").IsString() && o.Get("via").As<Napi::String>().Utf8Value() == "libvips";
  }
  return limits;
}

Napi::Value decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    throw makeError(env, "ERR_INVALID_ARGUMENT", "decode(buffer[, {maxPixels, maxSide, channels}]) needs a Buffer");
  }
  int channels = 3;
  if (info.Length() > 1 && info[1].IsObject()) channels = get(info[1].As<Napi::Object>(), "channels", 3);
  auto* w = new DecodeWorker(env, info[0].As<Napi::Buffer<uint8_t>>(), limitsFrom(info[1]), channels == 4 ? 4 : 3);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Encodes raw pixels as PNG (level, filter) or, with a JPEG quality, as JPEG on a worker thread.
class EncodeWorker : public BufferWorker {
 public:
  EncodeWorker(Napi::Env env, Napi::Buffer<uint8_t> buf, ImageView view, int level, std::string filter, int jpegQuality = 0)
      : BufferWorker(env, buf, DecodeLimits{}, "ERR_ENCODE"), view_(view), level_(level), filter_(std::move(filter)),
        jpegQuality_(jpegQuality) {}
  void run() override { out_ = jpegQuality_ > 0 ? encodeJpeg(view_, jpegQuality_) : encodePng(view_, level_, filter_); }
  void OnOK() override { deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(Env(), out_.data(), out_.size())); }

 private:
  ImageView view_;
  int level_;
  std::string filter_;
  int jpegQuality_;
  std::vector<uint8_t> out_;
};

Napi::Value encodePngJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsBuffer()) {
    throw makeError(env, "ERR_INVALID_ARGUMENT", "encodePng(buffer, width, height, channels, level[, filter])");
  }
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  ImageView v{buf.Data(), info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value(),
              info[3].As<Napi::Number>().Int32Value()};
  if (v.width <= 0 || v.height <= 0 || (v.channels != 1 && v.channels != 3 && v.channels != 4) ||
      v.stride() * v.height != buf.Length()) {
    throw makeError(env, "ERR_INVALID_ARGUMENT", "buffer size does not match width x height x channels");
  }
  std::string filter = info.Length() > 5 && info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : "sub";
  auto* w = new EncodeWorker(env, buf, v, info[4].As<Napi::Number>().Int32Value(), filter);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// encodeJpeg(rgb, width, height, quality) -> Promise<Buffer>
Napi::Value encodeJpegJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsBuffer()) {
    throw makeError(env, "ERR_INVALID_ARGUMENT", "encodeJpeg(rgbBuffer, width, height, quality)");
  }
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  ImageView v{buf.Data(), info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value(), 3};
  if (v.width <= 0 || v.height <= 0 || v.stride() * v.height != buf.Length()) {
    throw makeError(env, "ERR_INVALID_ARGUMENT", "buffer size does not match width x height x 3");
  }
  auto* w = new EncodeWorker(env, buf, v, 0, "", std::max(1, info[3].As<Napi::Number>().Int32Value()));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// modelInput(buffer, {width, height, mean, std, maxPixels, maxSide}) -> Promise<Float32Array>: the
// exact NCHW tensor the segmenter feeds its model for this image (decode, Lanczos resize, normalise).
// Used to calibrate quantised models on the same inputs the pipeline will see.
class ModelInputWorker : public BufferWorker {
 public:
  ModelInputWorker(Napi::Env env, Napi::Buffer<uint8_t> buf, DecodeLimits limits, int width, int height,
                   std::array<float, 3> mean, std::array<float, 3> sd)
      : BufferWorker(env, buf, limits), width_(width), height_(height), mean_(mean), sd_(sd) {}
  void run() override {
    Image rgb = decodeRgb(data_, size_, limits_);
    Image small = resizeLanczos(view(rgb), width_, height_);
    tensor_ = normaliseToTensor(small, mean_, sd_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    auto ab = Napi::ArrayBuffer::New(env, tensor_.size() * sizeof(float));
    std::copy(tensor_.begin(), tensor_.end(), static_cast<float*>(ab.Data()));
    deferred_.Resolve(Napi::Float32Array::New(env, tensor_.size(), ab, 0));
  }

 private:
  int width_, height_;
  std::array<float, 3> mean_, sd_;
  std::vector<float> tensor_;
};

Napi::Value modelInput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsObject()) {
    throw makeError(env, "ERR_INVALID_ARGUMENT", "modelInput(buffer, {width, height, mean, std}) needs a Buffer and options");
  }
  Napi::Object o = info[1].As<Napi::Object>();
  const int width = get(o, "width", 320), height = get(o, "height", 320);
  if (width <= 0 || height <= 0 || width > 4096 || height > 4096) {
    throw makeError(env, "ERR_INVALID_ARGUMENT", "modelInput: width and height must be 1..4096");
  }
  auto* w = new ModelInputWorker(env, info[0].As<Napi::Buffer<uint8_t>>(), limitsFrom(info[1]), width, height,
                                 triple(o, "mean", kImageNetMean), triple(o, "std", kImageNetStd));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// release(buffer) -> bool: frees a Buffer's bytes now rather than at V8's next full garbage
// collection (which waits until tens of MB of dead Buffers have piled up). Only a Buffer that is the
// whole of its ArrayBuffer, as the native core's results are, is released: its ArrayBuffer is
// detached (length 0 from then on). False, and nothing done, for a slice or a detached one.
Napi::Value release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) return Napi::Boolean::New(env, false);
  auto view = info[0].As<Napi::TypedArray>();
  Napi::ArrayBuffer buffer = view.ArrayBuffer();
  if (buffer.IsDetached() || view.ByteOffset() != 0 || view.ByteLength() != buffer.ByteLength()) return Napi::Boolean::New(env, false);
  buffer.Detach();
  return Napi::Boolean::New(env, true);
}

}  // namespace

Napi::Object initHelpers(Napi::Env env, Napi::Object exports) {
  exports.Set("versions", Napi::Function::New(env, versions));
  exports.Set("providers", Napi::Function::New(env, providers));
  exports.Set("decode", Napi::Function::New(env, decode));
  exports.Set("imageFormat", Napi::Function::New(env, imageFormat));
  exports.Set("encodePng", Napi::Function::New(env, encodePngJs));
  exports.Set("encodeJpeg", Napi::Function::New(env, encodeJpegJs));
  exports.Set("modelInput", Napi::Function::New(env, modelInput));
  exports.Set("release", Napi::Function::New(env, release));
  return exports;
}

}  // namespace bgrm
