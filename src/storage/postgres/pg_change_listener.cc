// PostgresChangeListener (include/engram/postgres_backend.h): one libpq connection that
// LISTENs on a store's change channel, read by a thread that polls the connection's socket
// together with an eventfd, so Stop() wakes it whatever it waits on (the server, a
// reconnection attempt, the backoff between two). Nothing here blocks in libpq: connecting
// uses PQconnectStartParams/PQconnectPoll and statements PQsendQuery/PQconsumeInput.
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

#include "common/check.h"
#include "common/logging.h"
#include "common/mutex.h"
#include "engram/postgres_backend.h"
#include "storage/postgres/pg_connection.h"
#include "storage/postgres/postgres_backend.h"

namespace engram::postgres {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kMinBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5'000};

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using ConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;

// Thrown-away server messages: a terminated connection announces itself with a FATAL
// notice, which libpq would otherwise print on stderr (a stdio MCP client may show it).
void NoticeToLog(void*, const char* message) {
  LogDebug("PostgreSQL notice on the change listener", {{"notice", OneLine(message)}});
}

// What a wait ended with.
enum class Woken { kReady, kStopped, kTimedOut };

// Waits until `fd` is ready for `events`, the wake fd is signalled, or `deadline` passes
// (no deadline: Clock::time_point::max()).
Woken WaitFor(int fd, short events, int wake_fd, Clock::time_point deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return Woken::kTimedOut;
      timeout = static_cast<int>(std::min<int64_t>(left, 60'000));
    }
    pollfd fds[2] = {{wake_fd, POLLIN, 0}, {fd, events, 0}};
    int n = poll(fds, fd >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Woken::kReady;  // let the caller's libpq call report the failure
    if (fds[0].revents != 0) return Woken::kStopped;
    if (n > 0) return Woken::kReady;
  }
}

// Connects to `options` without blocking past a signal on `wake_fd`, giving up after
// options.connect_timeout. Errors: kUnavailable (with libpq's reason), kCancelled (woken).
Result<ConnPtr> Connect(const ConnectOptions& options, int wake_fd) {
  ConnectParams params(options);
  ConnPtr conn(PQconnectStartParams(params.keys(), params.values(), /*expand_dbname=*/1));
  if (conn == nullptr) return UnavailableError("cannot connect to PostgreSQL: out of memory");
  const Clock::time_point deadline = Clock::now() + std::max(options.connect_timeout, std::chrono::milliseconds(2000));
  PostgresPollingStatusType state = PGRES_POLLING_WRITING;
  while (PQstatus(conn.get()) != CONNECTION_BAD && state != PGRES_POLLING_OK && state != PGRES_POLLING_FAILED) {
    short events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    Woken woken = WaitFor(PQsocket(conn.get()), events, wake_fd, deadline);
    if (woken == Woken::kStopped) return CancelledError("the change listener is stopping");
    if (woken == Woken::kTimedOut) {
      return UnavailableError("cannot connect to PostgreSQL (" + options.display + "): timed out after " +
                              std::to_string(options.connect_timeout.count()) + " ms");
    }
    state = PQconnectPoll(conn.get());
  }
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return UnavailableError("cannot connect to PostgreSQL (" + options.display +
                            "): " + OneLine(PQerrorMessage(conn.get())));
  }
  PQsetNoticeProcessor(conn.get(), NoticeToLog, nullptr);
  if (PQsetnonblocking(conn.get(), 1) != 0) {
    return UnavailableError("cannot use PostgreSQL (" + options.display + "): " + OneLine(PQerrorMessage(conn.get())));
  }
  return conn;
}

// Runs one statement and returns the first value of its first row ("" when it returns no
// rows or NULL, `*is_null` then set), waiting only as long as nothing signals `wake_fd`.
// Notifications that arrive meanwhile stay queued for PQnotifies.
// Errors: kUnavailable (the connection broke), kInternal (the statement failed),
// kCancelled (woken).
Result<std::string> RunStatement(PGconn* conn, const std::string& sql, int wake_fd, bool* is_null = nullptr) {
  auto broken = [&](std::string_view what) {
    return UnavailableError("PostgreSQL change listener: " + std::string(what) + ": " + OneLine(PQerrorMessage(conn)));
  };
  if (PQsendQuery(conn, sql.c_str()) == 0) return broken("cannot send " + sql);
  for (;;) {  // flush: a non-blocking connection may not send everything at once
    int flushed = PQflush(conn);
    if (flushed == 0) break;
    if (flushed < 0) return broken("cannot send " + sql);
    if (WaitFor(PQsocket(conn), POLLIN | POLLOUT, wake_fd, Clock::time_point::max()) == Woken::kStopped) {
      return CancelledError("the change listener is stopping");
    }
    if (PQconsumeInput(conn) == 0) return broken(sql);
  }
  std::optional<std::string> value;
  Status failed;
  if (is_null != nullptr) *is_null = false;
  for (;;) {
    while (PQisBusy(conn)) {
      if (WaitFor(PQsocket(conn), POLLIN, wake_fd, Clock::time_point::max()) == Woken::kStopped) {
        return CancelledError("the change listener is stopping");
      }
      if (PQconsumeInput(conn) == 0) return broken(sql);
    }
    PGresult* r = PQgetResult(conn);
    if (r == nullptr) break;
    ExecStatusType status = PQresultStatus(r);
    if (status == PGRES_TUPLES_OK && !value && PQntuples(r) > 0) {
      if (PQgetisnull(r, 0, 0) && is_null != nullptr) *is_null = true;
      value = std::string(PQgetvalue(r, 0, 0), static_cast<size_t>(PQgetlength(r, 0, 0)));
    } else if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK && failed.ok()) {
      failed = InternalError("PostgreSQL change listener: " + sql + ": " + OneLine(PQresultErrorMessage(r)));
    }
    PQclear(r);
  }
  if (PQstatus(conn) != CONNECTION_OK) return broken(sql);
  if (!failed.ok()) return failed;
  return value.value_or(std::string());
}

// The generation from the head of a payload ("123" of "123 ids", "123+ ids", "123@writer ids"),
// or nullopt.
std::optional<int64_t> ParseGeneration(std::string_view head) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(head.data(), head.data() + head.size(), value);
  if (ec != std::errc() || end != head.data() + head.size() || value < 0) return std::nullopt;
  return value;
}

// Joins the payloads of one write (ChangePayloads) into a PostgresChange. A payload that is
// not engram's (someone NOTIFYing the channel by hand) counts as "every episode changed" at
// generation 0. Not thread-safe: owned by the listener thread.
class ChangeAssembler {
 public:
  // The change a payload completes, or nullopt while more payloads of it follow.
  std::optional<PostgresChange> Add(std::string_view payload) {
    size_t space = payload.find(' ');
    std::string_view head = payload.substr(0, space);
    const bool more = !head.empty() && head.back() == '+';
    if (more) head.remove_suffix(1);
    std::string_view writer;
    if (size_t at = head.find('@'); at != std::string_view::npos) {
      writer = head.substr(at + 1);
      head = head.substr(0, at);
    }
    std::optional<int64_t> generation = ParseGeneration(head);
    if (!generation || (pending_ && pending_->generation != *generation)) {
      pending_.reset();
      PostgresChange foreign;
      foreign.all_episodes = true;
      if (generation) foreign.generation = *generation;
      return foreign;
    }
    if (!pending_) {
      pending_.emplace();
      pending_->generation = *generation;
      pending_->writer = std::string(writer);
    }
    if (space != std::string_view::npos) {
      std::string_view ids = payload.substr(space + 1);
      if (ids == "*") {
        pending_->all_episodes = true;
      } else {
        while (!ids.empty()) {
          size_t comma = ids.find(',');
          pending_->episode_ids.emplace_back(ids.substr(0, comma));
          ids = comma == std::string_view::npos ? std::string_view() : ids.substr(comma + 1);
        }
      }
    }
    if (more) return std::nullopt;
    std::optional<PostgresChange> done = std::move(pending_);
    pending_.reset();
    return done;
  }

  // Forgets a half-received write (the connection broke in its middle).
  void Reset() { pending_.reset(); }

 private:
  std::optional<PostgresChange> pending_;
};

// Thread-safe.
class PgChangeListener final : public PostgresChangeListener {
 public:
  PgChangeListener(ConnectOptions options, std::string schema, std::string channel, ConnPtr conn,
                   int64_t generation, int wake_fd)
      : options_(std::move(options)),
        schema_(std::move(schema)),
        channel_(std::move(channel)),
        wake_fd_(wake_fd),
        conn_(std::move(conn)),
        initial_generation_(generation) {
    backend_pid_.store(PQbackendPID(conn_.get()));
  }

  ~PgChangeListener() override {
    Stop();
    conn_.reset();  // the thread never started, or has ended
    close(wake_fd_);
  }

  const std::string& schema() const override { return schema_; }
  const std::string& channel() const override { return channel_; }

  void Start(PostgresChangeCallbacks callbacks) override {
    MutexLock lock(mu_);
    ENGRAM_CHECK(!thread_.joinable() && !stopped_);
    callbacks_ = std::move(callbacks);
    thread_ = std::thread([this] {
      try {
        Run();
      } catch (...) {
        // A throwing callback is a bug; the store stays correct without the listener (the
        // cache checks the generation before every hit), it only stops being refreshed.
        LogError("PostgreSQL change listener: a callback threw; the listener stopped", {{"store", options_.display}});
      }
    });
  }

  void Stop() override {
    MutexLock lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    uint64_t one = 1;
    // An eventfd counter cannot overflow with one write; the result only matters if it failed
    // to wake a thread that then waits forever, which a valid eventfd rules out.
    ssize_t written = write(wake_fd_, &one, sizeof one);
    (void)written;
    if (thread_.joinable()) thread_.join();
  }

  int64_t reconnects() const override { return reconnects_.load(); }
  int backend_pid() const override { return backend_pid_.load(); }

 private:
  // The listening thread: reports the first connection, then notifications, then
  // reconnects with backoff whenever the connection breaks, until Stop().
  void Run() {
    if (callbacks_.on_connected) callbacks_.on_connected(initial_generation_);
    ChangeAssembler assembler;
    std::chrono::milliseconds backoff = kMinBackoff;
    for (;;) {
      if (conn_ == nullptr) {
        if (WaitFor(-1, 0, wake_fd_, Clock::now() + backoff) == Woken::kStopped) return;
        Result<int64_t> listening = Reconnect();
        if (listening.status().code() == StatusCode::kCancelled) return;
        if (!listening.ok()) {
          LogWarn("PostgreSQL change listener: reconnecting failed; retrying",
                  {{"store", options_.display}, {"error", listening.status().ToString()},
                   {"retry_ms", std::to_string(std::min(backoff * 2, kMaxBackoff).count())}});
          backoff = std::min(backoff * 2, kMaxBackoff);
          continue;
        }
        backoff = kMinBackoff;
        reconnects_.fetch_add(1);
        LogInfo("PostgreSQL change listener reconnected", {{"store", options_.display}});
        if (callbacks_.on_connected) callbacks_.on_connected(*listening);
      }
      // libpq may already hold notifications, read along with LISTEN's results.
      Deliver(assembler);
      Woken woken = WaitFor(PQsocket(conn_.get()), POLLIN, wake_fd_, Clock::time_point::max());
      if (woken == Woken::kStopped) return;
      const bool read = PQconsumeInput(conn_.get()) != 0;
      Deliver(assembler);
      if (!read || PQstatus(conn_.get()) != CONNECTION_OK) {
        Status why = UnavailableError("lost the PostgreSQL change listener's connection (" + options_.display +
                                      "): " + OneLine(PQerrorMessage(conn_.get())));
        LogWarn("PostgreSQL change listener disconnected; reconnecting", {{"error", why.ToString()}});
        conn_.reset();
        backend_pid_.store(0);
        assembler.Reset();
        if (callbacks_.on_disconnected) callbacks_.on_disconnected(why);
      }
    }
  }

  // Reports every notification libpq has read, in order.
  void Deliver(ChangeAssembler& assembler) {
    while (PGnotify* n = PQnotifies(conn_.get())) {
      std::optional<PostgresChange> change;
      if (channel_ == n->relname) change = assembler.Add(n->extra);
      PQfreemem(n);
      if (change && callbacks_.on_change) callbacks_.on_change(*change);
    }
  }

  // Connects again and LISTENs; returns the generation read after LISTEN took effect.
  Result<int64_t> Reconnect() {
    ENGRAM_ASSIGN_OR_RETURN(ConnPtr conn, Connect(options_, wake_fd_));
    ENGRAM_ASSIGN_OR_RETURN(int64_t generation, Listen(conn.get(), channel_, wake_fd_));
    backend_pid_.store(PQbackendPID(conn.get()));
    conn_ = std::move(conn);
    return generation;
  }

 public:
  // LISTENs on `channel` (in its own implicit transaction, so it is in effect before the
  // next statement starts), then reads the store's generation.
  static Result<int64_t> Listen(PGconn* conn, const std::string& channel, int wake_fd) {
    char* quoted = PQescapeIdentifier(conn, channel.data(), channel.size());
    if (quoted == nullptr) return InternalError("cannot quote " + channel + ": " + OneLine(PQerrorMessage(conn)));
    std::string listen = std::string("LISTEN ") + quoted;
    PQfreemem(quoted);
    ENGRAM_ASSIGN_OR_RETURN(std::string ignored, RunStatement(conn, listen, wake_fd));
    ENGRAM_ASSIGN_OR_RETURN(std::string generation,
                            RunStatement(conn, "SELECT generation FROM engram_state WHERE id = 1", wake_fd));
    std::optional<int64_t> value = ParseGeneration(generation);
    if (!value) return DataLossError("the engram_state row of the store is missing");
    return *value;
  }

 private:
  // Constant after construction.
  const ConnectOptions options_;
  const std::string schema_;
  const std::string channel_;
  const int wake_fd_;

  // Used by the listening thread only (or by the constructor and destructor, when it does
  // not run).
  ConnPtr conn_;
  const int64_t initial_generation_;

  std::atomic<int64_t> reconnects_{0};
  std::atomic<int> backend_pid_{0};

  Mutex mu_;
  bool stopped_ ENGRAM_GUARDED_BY(mu_) = false;
  std::thread thread_ ENGRAM_GUARDED_BY(mu_);
  // Written by Start before the thread starts, then read only by the thread.
  PostgresChangeCallbacks callbacks_;
};

}  // namespace
}  // namespace engram::postgres

namespace engram {

Result<std::unique_ptr<PostgresChangeListener>> OpenPostgresChangeListener(const PostgresOptions& options) {
  using namespace postgres;
  if (options.conninfo.empty()) return InvalidArgumentError("the PostgreSQL connection string is empty");
  char* error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options.conninfo.c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  if (parsed == nullptr) return InvalidArgumentError("invalid PostgreSQL connection string");
  PQconninfoFree(parsed);

  ConnectOptions connect;
  connect.conninfo = options.conninfo;
  connect.password = options.password;
  connect.connect_timeout = options.connect_timeout;
  connect.display = MaskPostgresConninfo(options.conninfo);
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) return UnavailableError(std::string("eventfd: ") + std::strerror(errno));
  auto fail = [&](Status s) {
    close(wake_fd);
    return s;
  };
  Result<ConnPtr> conn = Connect(connect, wake_fd);
  if (!conn.ok()) return fail(conn.status());
  bool no_schema = false;
  Result<std::string> schema = RunStatement(conn->get(), "SELECT current_schema()", wake_fd, &no_schema);
  if (!schema.ok()) return fail(schema.status());
  if (no_schema) {
    return fail(FailedPreconditionError("PostgreSQL (" + connect.display +
                                        "): the search_path names no existing schema to listen on"));
  }
  std::string channel = ChangeChannel(*schema);
  Result<int64_t> generation = PgChangeListener::Listen(conn->get(), channel, wake_fd);
  if (generation.status().code() == StatusCode::kInternal) {
    return fail(FailedPreconditionError("schema " + *schema + " of PostgreSQL (" + connect.display +
                                        ") holds no engram store to listen to (open it first): " +
                                        std::string(generation.status().message())));
  }
  if (!generation.ok()) return fail(generation.status());
  return std::unique_ptr<PostgresChangeListener>(std::make_unique<PgChangeListener>(
      std::move(connect), *std::move(schema), std::move(channel), *std::move(conn), *generation, wake_fd));
}

}  // namespace engram
