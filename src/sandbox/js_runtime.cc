#include "sandbox/js_runtime.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <duktape.h>

#include "sandbox/helper_protocol.h"

namespace engram::sandbox {
namespace {

// Heap accounting: every block carries its size in a header so free and realloc can
// give it back to the budget.
struct Budget {
  int64_t limit = 0;
  int64_t used = 0;
  bool exceeded = false;
};

Budget g_budget;

struct alignas(16) Header {
  size_t size;
};

void* Alloc(void* udata, duk_size_t size) {
  auto* b = static_cast<Budget*>(udata);
  if (size == 0) return nullptr;
  if (b->used + static_cast<int64_t>(size) > b->limit) {
    b->exceeded = true;
    return nullptr;
  }
  auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + size));
  if (h == nullptr) {
    b->exceeded = true;
    return nullptr;
  }
  h->size = size;
  b->used += static_cast<int64_t>(size);
  return h + 1;
}

void Free(void* udata, void* ptr) {
  if (ptr == nullptr) return;
  auto* b = static_cast<Budget*>(udata);
  Header* h = static_cast<Header*>(ptr) - 1;
  b->used -= static_cast<int64_t>(h->size);
  std::free(h);
}

void* Realloc(void* udata, void* ptr, duk_size_t size) {
  auto* b = static_cast<Budget*>(udata);
  if (ptr == nullptr) return Alloc(udata, size);
  if (size == 0) {
    Free(udata, ptr);
    return nullptr;
  }
  Header* h = static_cast<Header*>(ptr) - 1;
  int64_t delta = static_cast<int64_t>(size) - static_cast<int64_t>(h->size);
  if (delta > 0 && b->used + delta > b->limit) {
    b->exceeded = true;
    return nullptr;
  }
  auto* n = static_cast<Header*>(std::realloc(h, sizeof(Header) + size));
  if (n == nullptr) {
    b->exceeded = true;
    return nullptr;
  }
  n->size = size;
  b->used += delta;
  return n + 1;
}

void WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void WriteAll(int fd, std::string_view text) { WriteAll(fd, text.data(), text.size()); }

void Fatal(void* udata, const char* msg) {
  WriteAll(2, "javascript: fatal error: ");
  WriteAll(2, msg != nullptr ? msg : "unknown");
  WriteAll(2, "\n");
  _exit(g_budget.exceeded ? kExitEngineMemory : kExitEngineError);
}

// JSON.stringify of the value at `idx`, or its string conversion if that throws or gives
// undefined. Leaves the stack as it was.
duk_ret_t SafeJsonEncode(duk_context* ctx, void*) {
  duk_json_encode(ctx, -1);
  return 1;
}

std::string Describe(duk_context* ctx, duk_idx_t idx, bool json_objects) {
  idx = duk_normalize_index(ctx, idx);
  if (json_objects && duk_is_object(ctx, idx) && !duk_is_function(ctx, idx) && !duk_is_error(ctx, idx)) {
    duk_dup(ctx, idx);
    if (duk_safe_call(ctx, SafeJsonEncode, nullptr, 1, 1) == DUK_EXEC_SUCCESS && duk_is_string(ctx, -1)) {
      std::string out = duk_get_string(ctx, -1);
      duk_pop(ctx);
      return out;
    }
    duk_pop(ctx);
  }
  duk_dup(ctx, idx);
  std::string out = duk_safe_to_string(ctx, -1);
  duk_pop(ctx);
  return out;
}

duk_ret_t WriteArgs(duk_context* ctx, int fd, bool json_objects) {
  duk_idx_t n = duk_get_top(ctx);
  std::string line;
  for (duk_idx_t i = 0; i < n; ++i) {
    if (i > 0) line += ' ';
    line += Describe(ctx, i, json_objects);
  }
  line += '\n';
  WriteAll(fd, line);
  return 0;
}

duk_ret_t Print(duk_context* ctx) { return WriteArgs(ctx, 1, false); }
duk_ret_t ConsoleLog(duk_context* ctx) { return WriteArgs(ctx, 1, true); }
duk_ret_t ConsoleError(duk_context* ctx) { return WriteArgs(ctx, 2, true); }

void InstallGlobals(duk_context* ctx) {
  duk_push_c_function(ctx, Print, DUK_VARARGS);
  duk_put_global_string(ctx, "print");
  duk_push_object(ctx);
  duk_push_c_function(ctx, ConsoleLog, DUK_VARARGS);
  duk_put_prop_string(ctx, -2, "log");
  duk_push_c_function(ctx, ConsoleLog, DUK_VARARGS);
  duk_put_prop_string(ctx, -2, "info");
  duk_push_c_function(ctx, ConsoleLog, DUK_VARARGS);
  duk_put_prop_string(ctx, -2, "debug");
  duk_push_c_function(ctx, ConsoleError, DUK_VARARGS);
  duk_put_prop_string(ctx, -2, "error");
  duk_push_c_function(ctx, ConsoleError, DUK_VARARGS);
  duk_put_prop_string(ctx, -2, "warn");
  duk_put_global_string(ctx, "console");
}

// Writes the error at the top of the stack (its stack trace when it has one) to stderr.
void ReportError(duk_context* ctx, std::string_view prefix) {
  std::string text;
  if (duk_is_error(ctx, -1)) {
    duk_get_prop_string(ctx, -1, "stack");
    text = duk_safe_to_string(ctx, -1);
    duk_pop(ctx);
  } else {
    text = "uncaught: " + Describe(ctx, -1, true);
  }
  WriteAll(2, std::string(prefix) + text + "\n");
}

struct EntryCall {
  const std::string* entry;
  const std::string* args_json;
};

// [] -> [result]: calls the global `entry` with the decoded arguments.
duk_ret_t CallEntry(duk_context* ctx, void* udata) {
  auto* call = static_cast<EntryCall*>(udata);
  if (!duk_get_global_string(ctx, call->entry->c_str()) || !duk_is_function(ctx, -1)) {
    return duk_error(ctx, DUK_ERR_REFERENCE_ERROR, "entry \"%s\" is not a global function", call->entry->c_str());
  }
  duk_idx_t nargs = 0;
  if (!call->args_json->empty()) {
    duk_push_lstring(ctx, call->args_json->data(), call->args_json->size());
    duk_json_decode(ctx, -1);
    if (!duk_is_array(ctx, -1)) return duk_error(ctx, DUK_ERR_TYPE_ERROR, "args must be a JSON array");
    duk_idx_t array = duk_get_top_index(ctx);
    duk_size_t n = duk_get_length(ctx, array);
    for (duk_size_t i = 0; i < n; ++i) duk_get_prop_index(ctx, array, static_cast<duk_uarridx_t>(i));
    duk_remove(ctx, array);
    nargs = static_cast<duk_idx_t>(n);
  }
  duk_call(ctx, nargs);
  return 1;
}

}  // namespace

int RunJavaScript(std::string_view code, const std::string& entry, const std::string& args_json,
                  int64_t heap_limit_bytes) {
  g_budget.limit = heap_limit_bytes;
  duk_context* ctx = duk_create_heap(Alloc, Realloc, Free, &g_budget, Fatal);
  if (ctx == nullptr) {
    WriteAll(2, "javascript: cannot create the engine's heap within the memory limit\n");
    return kExitEngineMemory;
  }
  InstallGlobals(ctx);
  int status = kExitEngineOk;
  duk_push_string(ctx, "main.js");
  if (duk_pcompile_lstring_filename(ctx, 0, code.data(), code.size()) != 0) {
    ReportError(ctx, "");
    status = kExitEngineError;
  } else if (duk_pcall(ctx, 0) != DUK_EXEC_SUCCESS) {
    ReportError(ctx, "");
    status = kExitEngineError;
  } else if (!entry.empty()) {
    duk_pop(ctx);
    EntryCall call{&entry, &args_json};
    if (duk_safe_call(ctx, CallEntry, &call, 0, 1) != DUK_EXEC_SUCCESS) {
      ReportError(ctx, "");
      status = kExitEngineError;
    } else if (!duk_is_undefined(ctx, -1)) {
      WriteAll(1, Describe(ctx, -1, true) + "\n");
    }
  }
  if (g_budget.exceeded) {
    WriteAll(2, "javascript: the memory limit (" + std::to_string(heap_limit_bytes >> 20) + " MiB) was reached\n");
    status = kExitEngineMemory;
  }
  // No duk_destroy_heap: the process ends here and the kernel frees everything at once.
  return status;
}

}  // namespace engram::sandbox
