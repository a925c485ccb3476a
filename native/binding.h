// N-API bindings: the Segmenter class and the module-level helpers exposed to JavaScript.
#pragma once
#include <napi.h>

#include <string>

namespace bgrm {

Napi::Object initSegmenter(Napi::Env env, Napi::Object exports);
Napi::Object initHelpers(Napi::Env env, Napi::Object exports);

// A JavaScript Error carrying a stable `code` property.
Napi::Error makeError(Napi::Env env, const std::string& code, const std::string& message);

}  // namespace bgrm
