// C++17 translation unit: wabt's headers do not compile as C++20 with g++ 12 (GOTCHAS.md).
// Nothing of wabt leaks through wasm_runtime.h.
#include "sandbox/wasm_runtime.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "wabt/binary-reader.h"
#include "wabt/binary-writer.h"
#include "wabt/error-formatter.h"
#include "wabt/feature.h"
#include "wabt/interp/binary-reader-interp.h"
#include "wabt/interp/interp.h"
#include "wabt/ir.h"
#include "wabt/stream.h"
#include "wabt/validator.h"
#include "wabt/wast-lexer.h"
#include "wabt/wast-parser.h"

#include "sandbox/helper_protocol.h"

namespace engram::sandbox {
namespace {

constexpr uint64_t kPageBytes = 65536;

void WriteAll(int fd, const std::string& text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

int Fail(const std::string& message, int code = kExitEngineError) {
  WriteAll(2, "wasm: " + message + "\n");
  return code;
}

bool IsWat(const std::string& text) {
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    return c == '(' || c == ';';
  }
  return false;
}

bool DecodeBase64(const std::string& text, std::vector<uint8_t>* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (c == '=') break;
    int v = value(c);
    if (v < 0) return false;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<uint8_t>((buffer >> bits) & 0xff));
    }
  }
  return true;
}

// WAT text → binary module bytes, or the parser's errors.
bool WatToBinary(const std::string& text, const wabt::Features& features, std::vector<uint8_t>* out,
                 std::string* error) {
  wabt::Errors errors;
  std::unique_ptr<wabt::WastLexer> lexer = wabt::WastLexer::CreateBufferLexer("main.wat", text.data(), text.size(), &errors);
  std::unique_ptr<wabt::Module> module;
  wabt::WastParseOptions parse_options(features);
  wabt::Result result = wabt::ParseWatModule(lexer.get(), &module, &errors, &parse_options);
  if (wabt::Succeeded(result)) {
    wabt::ValidateOptions validate_options(features);
    result = wabt::ValidateModule(module.get(), &errors, validate_options);
  }
  if (!wabt::Succeeded(result)) {
    *error = wabt::FormatErrorsToString(errors, wabt::Location::Type::Text, lexer->MakeLineFinder().get());
    return false;
  }
  wabt::MemoryStream stream;
  wabt::WriteBinaryOptions write_options(features, /*canonicalize_lebs=*/true, /*relocatable=*/false,
                                         /*write_debug_names=*/false);
  if (!wabt::Succeeded(wabt::WriteBinaryModule(&stream, module.get(), write_options))) {
    *error = "cannot encode the module";
    return false;
  }
  *out = stream.output_buffer().data;
  return true;
}

// The numbers of a JSON array such as "[1, -2.5, 3e2]" (checked by the parent already).
bool ParseNumbers(const std::string& json, std::vector<std::string>* out) {
  std::string s = json;
  size_t open = s.find('[');
  size_t close = s.rfind(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return json.empty();
  std::string body = s.substr(open + 1, close - open - 1);
  std::string item;
  for (char c : body + ",") {
    if (c == ',') {
      size_t b = item.find_first_not_of(" \t\r\n");
      size_t e = item.find_last_not_of(" \t\r\n");
      if (b != std::string::npos) out->push_back(item.substr(b, e - b + 1));
      item.clear();
    } else {
      item += c;
    }
  }
  return true;
}

bool ToValue(const std::string& text, wabt::Type type, wabt::interp::Value* out) {
  char* end = nullptr;
  errno = 0;
  bool integral = text.find_first_of(".eE") == std::string::npos;
  switch (type) {
    case wabt::Type::I32:
    case wabt::Type::I64: {
      long long v = integral ? std::strtoll(text.c_str(), &end, 10) : static_cast<long long>(std::strtod(text.c_str(), &end));
      if (end == text.c_str() || *end != '\0' || errno == ERANGE) return false;
      *out = type == wabt::Type::I32 ? wabt::interp::Value::Make(static_cast<uint32_t>(v))
                                     : wabt::interp::Value::Make(static_cast<uint64_t>(v));
      return true;
    }
    case wabt::Type::F32:
    case wabt::Type::F64: {
      double v = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0') return false;
      *out = type == wabt::Type::F32 ? wabt::interp::Value::Make(static_cast<float>(v)) : wabt::interp::Value::Make(v);
      return true;
    }
    default:
      return false;
  }
}

std::string Format(const wabt::interp::Value& v, wabt::Type type) {
  char buf[64];
  switch (type) {
    case wabt::Type::I32: std::snprintf(buf, sizeof(buf), "%" PRId32, static_cast<int32_t>(v.Get<uint32_t>())); break;
    case wabt::Type::I64: std::snprintf(buf, sizeof(buf), "%" PRId64, static_cast<int64_t>(v.Get<uint64_t>())); break;
    case wabt::Type::F32: std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(v.Get<float>())); break;
    case wabt::Type::F64: std::snprintf(buf, sizeof(buf), "%.17g", v.Get<double>()); break;
    default: return "<" + std::string(type.GetName()) + ">";
  }
  return buf;
}

int Run(const std::string& code, const std::string& entry, const std::string& args_json, int64_t memory_limit_bytes) {
  wabt::Features features;
  std::vector<uint8_t> binary;
  if (IsWat(code)) {
    std::string error;
    if (!WatToBinary(code, features, &binary, &error)) return Fail("invalid module:\n" + error);
  } else if (!DecodeBase64(code, &binary) || binary.size() < 4 || binary[0] != 0 || binary[1] != 'a') {
    return Fail("code is neither WAT text nor a base64-encoded binary module");
  }

  wabt::Errors errors;
  wabt::interp::ModuleDesc desc;
  wabt::ReadBinaryOptions read_options(features, nullptr, /*read_debug_names=*/false, /*stop_on_first_error=*/true,
                                       /*fail_on_custom_section_error=*/false);
  if (!wabt::Succeeded(wabt::interp::ReadBinaryInterp("main.wasm", binary.data(), binary.size(), read_options,
                                                      &errors, &desc))) {
    return Fail("invalid module:\n" + wabt::FormatErrorsToString(errors, wabt::Location::Type::Binary));
  }

  // The memory limit: no memory may start above it, and none may grow past it (the
  // module's own maximum is lowered; memory.grow then returns -1, per the spec).
  const uint64_t cap_pages = static_cast<uint64_t>(memory_limit_bytes) / kPageBytes;
  std::vector<bool> capped;
  for (wabt::interp::MemoryDesc& m : desc.memories) {
    wabt::Limits& limits = m.type.limits;
    if (limits.initial > cap_pages) {
      return Fail("the module's initial memory (" + std::to_string(limits.initial) + " pages) is above the limit of " +
                      std::to_string(memory_limit_bytes >> 20) + " MiB",
                  kExitEngineMemory);
    }
    bool lowered = !limits.has_max || limits.max > cap_pages;
    if (lowered) {
      limits.max = cap_pages;
      limits.has_max = true;
    }
    capped.push_back(lowered);
  }

  wabt::interp::Store store(features);
  wabt::interp::Module::Ptr module = wabt::interp::Module::New(store, desc);
  wabt::interp::RefVec imports;
  for (const wabt::interp::ImportDesc& import : module->desc().imports) {
    const std::string& mod = import.type.module;
    const std::string& name = import.type.name;
    bool print = mod == "env" && (name == "print_i32" || name == "print_i64" || name == "print_f32" || name == "print_f64");
    if (!print || import.type.type->kind != wabt::interp::ExternKind::Func) {
      return Fail("import " + mod + "." + name +
                  " is not available in the sandbox (only env.print_i32, print_i64, print_f32, print_f64)");
    }
    auto func_type = *wabt::cast<wabt::interp::FuncType>(import.type.type.get());
    if (func_type.params.size() != 1 || !func_type.results.empty()) {
      return Fail("import env." + name + " must take one number and return nothing");
    }
    wabt::Type param = func_type.params[0];
    imports.push_back(wabt::interp::HostFunc::New(store, func_type,
                                                  [param](wabt::interp::Thread&, const wabt::interp::Values& params,
                                                          wabt::interp::Values&, wabt::interp::Trap::Ptr*) {
                                                    WriteAll(1, Format(params[0], param) + "\n");
                                                    return wabt::Result::Ok;
                                                  })
                          .ref());
  }

  wabt::interp::Trap::Ptr trap;
  wabt::interp::Instance::Ptr instance = wabt::interp::Instance::Instantiate(store, module.ref(), imports, &trap);
  if (!instance) return Fail("cannot instantiate the module: " + (trap ? trap->message() : std::string("unknown")));

  int status = kExitEngineOk;
  const wabt::interp::ExportDesc* found = nullptr;
  for (const wabt::interp::ExportDesc& e : module->desc().exports) {
    if (e.type.name == entry) found = &e;
  }
  if (found == nullptr || found->type.type->kind != wabt::interp::ExternKind::Func) {
    return Fail("the module exports no function named \"" + entry + "\"");
  }
  auto* func_type = wabt::cast<wabt::interp::FuncType>(found->type.type.get());
  std::vector<std::string> texts;
  if (!ParseNumbers(args_json, &texts)) return Fail("args must be a JSON array of numbers");
  if (texts.size() != func_type->params.size()) {
    return Fail("\"" + entry + "\" takes " + std::to_string(func_type->params.size()) + " arguments, " +
                std::to_string(texts.size()) + " given");
  }
  wabt::interp::Values params;
  for (size_t i = 0; i < texts.size(); ++i) {
    wabt::interp::Value v;
    if (!ToValue(texts[i], func_type->params[i], &v)) {
      return Fail("argument " + std::to_string(i + 1) + " (" + texts[i] + ") is not a valid " +
                  func_type->params[i].GetName());
    }
    params.push_back(v);
  }
  auto func = store.UnsafeGet<wabt::interp::Func>(instance->funcs()[found->index]);
  wabt::interp::Values results;
  if (!wabt::Succeeded(func->Call(store, params, results, &trap))) {
    status = Fail("trap: " + (trap ? trap->message() : std::string("unknown")));
  } else {
    for (size_t i = 0; i < results.size(); ++i) WriteAll(1, Format(results[i], func_type->results[i]) + "\n");
  }

  // memory.grow has no hook to see a refusal, so a memory that ended within the last
  // eighth of the limit we imposed counts as having run into it.
  for (size_t i = 0; i < instance->memories().size() && i < capped.size(); ++i) {
    auto memory = store.UnsafeGet<wabt::interp::Memory>(instance->memories()[i]);
    if (capped[i] && cap_pages > 0 && memory->PageSize() * 8 >= cap_pages * 7) {
      WriteAll(2, "wasm: memory " + std::to_string(i) + " reached " + std::to_string(memory->PageSize()) + " of the " +
                      std::to_string(cap_pages) + " pages allowed (" + std::to_string(memory_limit_bytes >> 20) +
                      " MiB); memory.grow past the limit returns -1\n");
      status = kExitEngineMemory;
    }
  }
  return status;
}

}  // namespace

bool WasmRuntimeAvailable() { return true; }

int RunWasm(std::string_view code, const std::string& entry, const std::string& args_json,
            int64_t memory_limit_bytes) {
  // wabt may throw std::bad_alloc; this is the runtime process's entry point.
  try {
    return Run(std::string(code), entry, args_json, memory_limit_bytes);
  } catch (const std::bad_alloc&) {
    return Fail("out of memory", kExitEngineMemory);
  } catch (...) {
    return Fail("internal error in the WebAssembly runtime");
  }
}

}  // namespace engram::sandbox
