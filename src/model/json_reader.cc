#include "model/json_reader.h"

#include "common/strings.h"

namespace engram {

using nlohmann::json;

namespace {
const char* TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}
}  // namespace

Status CheckText(std::string_view value, const std::string& path, size_t max_chars, bool allow_empty) {
  if (!IsValidUtf8(value)) return InvalidArgumentError(path + ": not valid UTF-8");
  if (!allow_empty && StripAsciiWhitespace(value).empty()) {
    return InvalidArgumentError(path + ": must not be empty");
  }
  if (max_chars != SIZE_MAX && Utf8Length(value) > max_chars) {
    return InvalidArgumentError(path + ": too long (" + std::to_string(Utf8Length(value)) +
                                " characters; the limit is " + std::to_string(max_chars) + ")");
  }
  return OkStatus();
}

JsonReader::JsonReader(const json& j, std::string path) : j_(j), path_(std::move(path)) {
  if (!j_.is_object()) {
    status_ = InvalidArgumentError(path_ + ": expected an object, got " + TypeName(j_));
  }
}

bool JsonReader::Has(const char* key) const { return Find(key) != nullptr; }

const json* JsonReader::Find(const char* key) const {
  if (!j_.is_object()) return nullptr;
  auto it = j_.find(key);
  if (it == j_.end() || it->is_null()) return nullptr;
  return &*it;
}

Status JsonReader::TypeError(const char* key, const char* expected) const {
  const json* v = Find(key);
  return InvalidArgumentError(PathOf(key) + ": expected " + expected + ", got " +
                              (v ? TypeName(*v) : "nothing"));
}

void JsonReader::RequiredString(const char* key, std::string* out, size_t max_chars, bool allow_empty) {
  if (!ok()) return;
  const json* v = Find(key);
  if (v == nullptr) return Fail(InvalidArgumentError(PathOf(key) + ": missing required field"));
  if (!v->is_string()) return Fail(TypeError(key, "a string"));
  const auto& s = v->get_ref<const std::string&>();
  Status st = CheckText(s, PathOf(key), max_chars, allow_empty);
  if (!st.ok()) return Fail(std::move(st));
  *out = s;
}

void JsonReader::OptionalString(const char* key, std::optional<std::string>* out, size_t max_chars) {
  if (!ok() || !Has(key)) return;
  std::string s;
  RequiredString(key, &s, max_chars, /*allow_empty=*/true);
  if (ok()) *out = std::move(s);
}

void JsonReader::OptionalString(const char* key, std::string* out, size_t max_chars) {
  if (!ok() || !Has(key)) return;
  RequiredString(key, out, max_chars, /*allow_empty=*/true);
}

void JsonReader::OptionalStringList(const char* key, std::vector<std::string>* out, size_t max_items,
                                    size_t max_chars) {
  if (!ok()) return;
  const json* v = Find(key);
  if (v == nullptr) return;
  if (!v->is_array()) return Fail(TypeError(key, "an array of strings"));
  if (v->size() > max_items) {
    return Fail(InvalidArgumentError(PathOf(key) + ": too many items (" + std::to_string(v->size()) +
                                     "; the limit is " + std::to_string(max_items) + ")"));
  }
  std::vector<std::string> items;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& item = (*v)[i];
    std::string item_path = PathOf(key) + "[" + std::to_string(i) + "]";
    if (!item.is_string()) {
      return Fail(InvalidArgumentError(item_path + ": expected a string, got " + TypeName(item)));
    }
    Status st = CheckText(item.get_ref<const std::string&>(), item_path, max_chars, true);
    if (!st.ok()) return Fail(std::move(st));
    items.push_back(item.get<std::string>());
  }
  *out = std::move(items);
}

void JsonReader::RequiredInt(const char* key, int64_t* out, int64_t min, int64_t max) {
  if (!ok()) return;
  const json* v = Find(key);
  if (v == nullptr) return Fail(InvalidArgumentError(PathOf(key) + ": missing required field"));
  int64_t value;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return Fail(InvalidArgumentError(PathOf(key) + ": out of range"));
    }
    value = v->get<int64_t>();
  } else if (v->is_number_float() && v->get<double>() == static_cast<double>(static_cast<int64_t>(v->get<double>())) &&
             v->get<double>() < 9.2e18 && v->get<double>() > -9.2e18) {
    value = static_cast<int64_t>(v->get<double>());  // 3.0 is an integer
  } else {
    return Fail(TypeError(key, "an integer"));
  }
  if (value < min || value > max) {
    return Fail(InvalidArgumentError(PathOf(key) + ": " + std::to_string(value) + " is out of range [" +
                                     std::to_string(min) + ", " + std::to_string(max) + "]"));
  }
  *out = value;
}

void JsonReader::OptionalInt(const char* key, std::optional<int64_t>* out, int64_t min, int64_t max) {
  if (!ok() || !Has(key)) return;
  int64_t v = 0;
  RequiredInt(key, &v, min, max);
  if (ok()) *out = v;
}

void JsonReader::RequiredDouble(const char* key, double* out) {
  if (!ok()) return;
  const json* v = Find(key);
  if (v == nullptr) return Fail(InvalidArgumentError(PathOf(key) + ": missing required field"));
  if (!v->is_number()) return Fail(TypeError(key, "a number"));
  *out = v->get<double>();
}

void JsonReader::OptionalDouble(const char* key, double* out) {
  if (!ok() || !Has(key)) return;
  RequiredDouble(key, out);
}

void JsonReader::OptionalDouble(const char* key, std::optional<double>* out, double min, double max) {
  if (!ok() || !Has(key)) return;
  double d = 0;
  RequiredDouble(key, &d);
  if (!ok()) return;
  if (!(d >= min && d <= max)) {
    return Fail(InvalidArgumentError(PathOf(key) + ": " + std::to_string(d) + " is out of range [" +
                                     std::to_string(min) + ", " + std::to_string(max) + "]"));
  }
  *out = d;
}

void JsonReader::OptionalBool(const char* key, std::optional<bool>* out) {
  if (!ok() || !Has(key)) return;
  const json* v = Find(key);
  if (!v->is_boolean()) return Fail(TypeError(key, "a boolean"));
  *out = v->get<bool>();
}

void JsonReader::OptionalBool(const char* key, bool* out) {
  std::optional<bool> b;
  OptionalBool(key, &b);
  if (b) *out = *b;
}

}  // namespace engram
