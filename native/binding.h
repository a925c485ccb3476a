// N-API bindings: the Segmenter class and the module-level helpers exposed to JavaScript.
#pragma once
#include <napi.h>

#include <array>
#include <cstdint>
#include <string>

namespace bgrm {

Napi::Object initSegmenter(Napi::Env env, Napi::Object exports);
Napi::Object initHelpers(Napi::Env env, Napi::Object exports);

// A JavaScript Error carrying a stable `code` property.
Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message);

// Options objects from JavaScript: a property of the right type, else the fallback.
template <typename T>
T get(const Napi::Object& o, const char* key, T fallback);
template <>
inline int get(const Napi::Object& o, const char* key, int fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : fallback;
}
template <>
inline double get(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}
template <>
inline bool get(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}
template <>
inline std::string get(const Napi::Object& o, const char* key, std::string fallback) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : fallback;
}

// Three numbers (a mean or std per colour channel), else the fallback.
inline std::array<float, 3> triple(const Napi::Object& o, const char* key, std::array<float, 3> fallback) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) return fallback;
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() != 3) return fallback;
  for (uint32_t i = 0; i < 3; ++i) fallback[i] = a.Get(i).As<Napi::Number>().FloatValue();
  return fallback;
}

}  // namespace bgrm
