// engram::Result<T>: either a value of type T or a non-OK Status, with abseil's StatusOr
// API. Use it for every fallible function that produces a value.
//
//   Result<Episode> r = backend.GetEpisode(id);
//   if (!r.ok()) return r.status();
//   Use(*r);
//
// Thread-compatible.
#pragma once

#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>

#include "engram/status.h"

namespace engram {

namespace internal {
[[noreturn]] void DieOnBadResultAccess(const Status& status);
}  // namespace internal

template <typename T>
class [[nodiscard]] Result {
 public:
  // REQUIRES: !status.ok(). An OK status without a value becomes kInternal.
  Result(Status status) : status_(std::move(status)) {  // NOLINT(implicit)
    if (status_.ok()) status_ = InternalError("Result constructed from OK status without a value");
  }
  Result(const T& value) : value_(value) {}        // NOLINT(implicit)
  Result(T&& value) : value_(std::move(value)) {}  // NOLINT(implicit)
  template <typename U,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                        !std::is_same_v<std::decay_t<U>, Result<T>> &&
                                        !std::is_same_v<std::decay_t<U>, Status> &&
                                        !std::is_same_v<std::decay_t<U>, T>>>
  Result(U&& value) : value_(std::in_place, std::forward<U>(value)) {}  // NOLINT(implicit)

  bool ok() const { return value_.has_value(); }
  const Status& status() const& { return status_; }
  Status status() && { return std::move(status_); }

  // REQUIRES: ok(). Aborts with the status otherwise.
  const T& value() const& {
    Check();
    return *value_;
  }
  T& value() & {
    Check();
    return *value_;
  }
  T&& value() && {
    Check();
    return std::move(*value_);
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  // The value, or `fallback` when not OK.
  T value_or(T fallback) const& { return ok() ? *value_ : std::move(fallback); }

 private:
  void Check() const {
    if (!value_.has_value()) internal::DieOnBadResultAccess(status_);
  }

  Status status_;  // OK iff value_ holds a value
  std::optional<T> value_;
};

}  // namespace engram
