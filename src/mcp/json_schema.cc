#include "mcp/json_schema.h"

#include <cmath>

#include "common/strings.h"

namespace engram::mcp {
namespace {

bool HasType(const Json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "number") return v.is_number();
  if (type == "integer") {
    if (v.is_number_integer()) return true;
    if (v.is_number_float()) {
      double d = v.get<double>();
      return std::isfinite(d) && d == std::floor(d);
    }
    return false;
  }
  return true;  // unknown type names do not reject
}

std::string Describe(const Json& v) {
  if (v.is_null()) return "null";
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  return "a number";
}

std::string Article(const std::string& type) {
  return (type == "object" || type == "array" || type == "integer") ? "an " + type : "a " + type;
}

// A non-negative integer keyword value (nlohmann stores literals like 36 as signed).
bool IsCount(const Json& v) { return v.is_number_integer() && v.get<int64_t>() >= 0; }

std::string Short(const Json& v) { return Ellipsize(Dump(v), 60); }

}  // namespace

Status ValidateJson(const Json& value, const Json& schema, const std::string& path) {
  if (schema.is_boolean()) {
    if (schema.get<bool>()) return OkStatus();
    return InvalidArgumentError(path + ": is not allowed");
  }
  if (!schema.is_object()) return OkStatus();

  if (auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    std::string expected;
    if (t->is_string()) {
      ok = HasType(value, *t);
      expected = Article(*t);
    } else if (t->is_array()) {
      for (const Json& one : *t) {
        if (one.is_string() && HasType(value, one)) ok = true;
        if (one.is_string()) expected += (expected.empty() ? "" : " or ") + Article(one);
      }
    } else {
      ok = true;
    }
    if (!ok) return InvalidArgumentError(path + ": expected " + expected + ", got " + Describe(value));
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    bool found = false;
    std::string names;
    for (const Json& option : *e) {
      if (option == value) found = true;
      names += (names.empty() ? "" : ", ") + (option.is_string() ? option.get<std::string>() : Dump(option));
    }
    if (!found) return InvalidArgumentError(path + ": " + Short(value) + " is not one of: " + names);
  }
  if (auto c = schema.find("const"); c != schema.end() && *c != value) {
    return InvalidArgumentError(path + ": must be " + Short(*c));
  }
  if (value.is_number()) {
    double d = value.get<double>();
    if (auto m = schema.find("minimum"); m != schema.end() && m->is_number() && d < m->get<double>()) {
      return InvalidArgumentError(path + ": must be at least " + Dump(*m) + ", got " + Dump(value));
    }
    if (auto m = schema.find("maximum"); m != schema.end() && m->is_number() && d > m->get<double>()) {
      return InvalidArgumentError(path + ": must be at most " + Dump(*m) + ", got " + Dump(value));
    }
    if (auto m = schema.find("exclusiveMinimum"); m != schema.end() && m->is_number() && d <= m->get<double>()) {
      return InvalidArgumentError(path + ": must be greater than " + Dump(*m));
    }
    if (auto m = schema.find("exclusiveMaximum"); m != schema.end() && m->is_number() && d >= m->get<double>()) {
      return InvalidArgumentError(path + ": must be less than " + Dump(*m));
    }
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (!IsValidUtf8(s)) return InvalidArgumentError(path + ": not valid UTF-8");
    size_t len = Utf8Length(s);
    if (auto m = schema.find("minLength"); m != schema.end() && IsCount(*m) && len < m->get<size_t>()) {
      return InvalidArgumentError(path + (len == 0 ? ": must not be empty"
                                                   : ": must be at least " + Dump(*m) + " characters"));
    }
    if (auto m = schema.find("maxLength"); m != schema.end() && IsCount(*m) && len > m->get<size_t>()) {
      return InvalidArgumentError(path + ": too long (" + std::to_string(len) + " characters; the limit is " +
                                  Dump(*m) + ")");
    }
  }
  if (value.is_array()) {
    if (auto m = schema.find("minItems"); m != schema.end() && IsCount(*m) && value.size() < m->get<size_t>()) {
      return InvalidArgumentError(path + ": needs at least " + Dump(*m) + " items");
    }
    if (auto m = schema.find("maxItems"); m != schema.end() && IsCount(*m) && value.size() > m->get<size_t>()) {
      return InvalidArgumentError(path + ": too many items (" + std::to_string(value.size()) + "; the limit is " +
                                  Dump(*m) + ")");
    }
    if (auto items = schema.find("items"); items != schema.end()) {
      for (size_t i = 0; i < value.size(); ++i) {
        ENGRAM_RETURN_IF_ERROR(ValidateJson(value[i], *items, path + "[" + std::to_string(i) + "]"));
      }
    }
  }
  if (value.is_object()) {
    if (auto req = schema.find("required"); req != schema.end() && req->is_array()) {
      for (const Json& name : *req) {
        if (name.is_string() && !value.contains(name.get<std::string>())) {
          return InvalidArgumentError(path + "." + name.get<std::string>() + ": missing required field");
        }
      }
    }
    auto props = schema.find("properties");
    auto additional = schema.find("additionalProperties");
    for (auto it = value.begin(); it != value.end(); ++it) {
      const Json* sub = nullptr;
      if (props != schema.end() && props->is_object()) {
        auto p = props->find(it.key());
        if (p != props->end()) sub = &*p;
      }
      if (sub == nullptr && additional != schema.end()) {
        if (additional->is_boolean() && !additional->get<bool>()) {
          return InvalidArgumentError(path + "." + it.key() + ": unknown field");
        }
        if (additional->is_object()) sub = &*additional;
      }
      if (sub != nullptr) ENGRAM_RETURN_IF_ERROR(ValidateJson(*it, *sub, path + "." + it.key()));
    }
  }
  if (auto any = schema.find("anyOf"); any != schema.end() && any->is_array()) {
    Status first;
    for (const Json& option : *any) {
      Status s = ValidateJson(value, option, path);
      if (s.ok()) return OkStatus();
      if (first.ok()) first = s;
    }
    if (!any->empty()) return first;
  }
  if (auto one = schema.find("oneOf"); one != schema.end() && one->is_array()) {
    int matches = 0;
    Status first;
    for (const Json& option : *one) {
      Status s = ValidateJson(value, option, path);
      if (s.ok()) ++matches;
      else if (first.ok()) first = s;
    }
    if (matches == 0 && !one->empty()) return first;
    if (matches > 1) return InvalidArgumentError(path + ": matches more than one allowed form");
  }
  return OkStatus();
}

}  // namespace engram::mcp
