// engram::Status: the outcome of an operation that can fail, with a canonical code and
// a message meant for a person (or a model) to act on. engram code never throws; every
// fallible function returns Status or Result<T> (result.h).
//
//   Status s = backend.DeleteEpisode(id);
//   if (!s.ok()) return s;                 // or ENGRAM_RETURN_IF_ERROR(...)
//
// A Status that is OK costs one null pointer. Thread-compatible.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace engram {

// The subset of abseil's canonical codes that engram uses.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
};

// "INVALID_ARGUMENT", "NOT_FOUND", ...
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string_view message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;
  ~Status() = default;

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  // Empty when OK.
  std::string_view message() const;
  // "NOT_FOUND: no episode 0193..." or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "`context`: <message>". OK stays OK.
  Status WithContext(std::string_view context) const;

  // Marks a status as deliberately ignored.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

inline Status OkStatus() { return Status(); }
Status CancelledError(std::string_view message);
Status InvalidArgumentError(std::string_view message);
Status DeadlineExceededError(std::string_view message);
Status NotFoundError(std::string_view message);
Status AlreadyExistsError(std::string_view message);
Status PermissionDeniedError(std::string_view message);
Status ResourceExhaustedError(std::string_view message);
Status FailedPreconditionError(std::string_view message);
Status AbortedError(std::string_view message);
Status UnimplementedError(std::string_view message);
Status InternalError(std::string_view message);
Status UnavailableError(std::string_view message);
Status DataLossError(std::string_view message);

}  // namespace engram

#define ENGRAM_STATUS_CONCAT_INNER_(a, b) a##b
#define ENGRAM_STATUS_CONCAT_(a, b) ENGRAM_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (a Status); returns it from the current function if not OK.
#define ENGRAM_RETURN_IF_ERROR(expr)                                       \
  do {                                                                     \
    ::engram::Status engram_status_ = (expr);                              \
    if (!engram_status_.ok()) return engram_status_;                       \
  } while (0)

// Evaluates `rexpr` (a Result<T>); on error returns its Status, otherwise moves the
// value into `lhs`, which may be a declaration: ENGRAM_ASSIGN_OR_RETURN(auto x, F());
#define ENGRAM_ASSIGN_OR_RETURN(lhs, rexpr) \
  ENGRAM_ASSIGN_OR_RETURN_IMPL_(ENGRAM_STATUS_CONCAT_(engram_result_, __LINE__), lhs, rexpr)
#define ENGRAM_ASSIGN_OR_RETURN_IMPL_(result, lhs, rexpr) \
  auto result = (rexpr);                                  \
  if (!result.ok()) return std::move(result).status();    \
  lhs = std::move(result).value()
