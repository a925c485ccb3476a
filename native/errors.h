// Error type shared by the native core: a stable code (ERR_*) plus a message that says what to do.
#pragma once
#include <stdexcept>
#include <string>

namespace bgrm {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

}  // namespace bgrm
