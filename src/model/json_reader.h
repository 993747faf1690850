// Reads fields of a JSON object with errors that name the field's path, so a person or
// a model can fix the input. The first error sticks; later reads become no-ops.
//
//   JsonReader r(j, "step");
//   r.RequiredString("tool", &step.tool);
//   r.OptionalInt("latency_ms", &step.latency_ms);
//   ENGRAM_RETURN_IF_ERROR(r.status());
//
// Not thread-safe: owned by one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engram/status.h"

namespace engram {

class JsonReader {
 public:
  // An error is recorded at once if `j` is not an object.
  JsonReader(const nlohmann::json& j, std::string path);

  const Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  bool Has(const char* key) const;
  // The field, or nullptr if absent or null.
  const nlohmann::json* Find(const char* key) const;
  std::string PathOf(const char* key) const { return path_ + "." + key; }
  void Fail(Status s) {
    if (status_.ok()) status_ = std::move(s);
  }

  // Strings: must be valid UTF-8 and at most `max_chars` code points.
  void RequiredString(const char* key, std::string* out, size_t max_chars = SIZE_MAX,
                      bool allow_empty = false);
  void OptionalString(const char* key, std::optional<std::string>* out, size_t max_chars = SIZE_MAX);
  void OptionalString(const char* key, std::string* out, size_t max_chars = SIZE_MAX);
  void OptionalStringList(const char* key, std::vector<std::string>* out, size_t max_items = SIZE_MAX,
                          size_t max_chars = SIZE_MAX);
  void RequiredInt(const char* key, int64_t* out, int64_t min = INT64_MIN, int64_t max = INT64_MAX);
  void OptionalInt(const char* key, std::optional<int64_t>* out, int64_t min = INT64_MIN,
                   int64_t max = INT64_MAX);
  void RequiredDouble(const char* key, double* out);
  void OptionalDouble(const char* key, double* out);
  void OptionalDouble(const char* key, std::optional<double>* out, double min, double max);
  void OptionalBool(const char* key, std::optional<bool>* out);
  void OptionalBool(const char* key, bool* out);

 private:
  Status TypeError(const char* key, const char* expected) const;

  const nlohmann::json& j_;
  std::string path_;
  Status status_;
};

// Checks a string value: UTF-8, length in code points, non-empty unless allowed.
Status CheckText(std::string_view value, const std::string& path, size_t max_chars, bool allow_empty);

}  // namespace engram
