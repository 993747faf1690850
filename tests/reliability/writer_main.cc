// engram_test_writer: a child process for the reliability tests. Opens a SQLite store and
// records complete episodes through Memory, printing each episode id on its own line
// once CompleteEpisode has returned OK (so a printed id is an acknowledged one).
//
//   engram_test_writer --db /tmp/x/memory.db --episodes 500 --steps 10 --tag w3
//                      [--durability full|normal] [--out-fd 1] [--cache /tmp/x/memory.db.cache]
//
// With --cache, every call goes through the LMDB cache in that folder, and the writer also
// checks it is never served a stale copy: after completing an episode it reads it back
// (complete, all steps), and after each episode it reads a recent episode of another writer
// first straight from SQLite, then through the cache; the cached copy must be at least as
// new (episodes only grow: more steps, then completion). A stale read is an error.
//
// Episode i of worker TAG has task_description "writer TAG episode i", tags
// {"reliability", "writer:TAG"}, and M steps whose action is "TAG/i/step j" with
// parameters {"episode":i,"step":j}, so a test can check what it reads back against
// what this writer must have written.
//
// Exits 0 when all episodes are recorded; on any failure prints the error to stderr
// and exits 1 (2 for bad usage).
#include <errno.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "engram/clock.h"
#include "engram/lmdb_cache.h"
#include "engram/memory.h"
#include "engram/sqlite_backend.h"
#include "engram/storage.h"

namespace engram {
namespace {

struct Flags {
  std::string db;
  long episodes = 1;
  long steps = 10;
  std::string tag = "w";
  Durability durability = Durability::kFull;
  int out_fd = STDOUT_FILENO;
  std::string cache;  // the LMDB cache folder; empty: no cache
};

int Usage(const char* why) {
  std::fprintf(stderr,
               "engram_test_writer: %s\n"
               "usage: engram_test_writer --db PATH [--episodes N] [--steps M] [--tag WORKER]\n"
               "                          [--durability full|normal] [--out-fd FD] [--cache DIR]\n",
               why);
  return 2;
}

bool ParseLong(const char* text, long min, long* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min) return false;
  *out = v;
  return true;
}

// Writes all of `line` to `fd`. A line of an id is far below PIPE_BUF, so a reader
// never sees half of it even if this process is killed mid-call.
bool WriteLine(int fd, const std::string& line) {
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

int Fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "engram_test_writer: error: %s: %s\n", what.c_str(), s.ToString().c_str());
  return 1;
}

bool HasTag(const Episode& e, const std::string& tag) {
  for (const std::string& t : e.tags) {
    if (t == tag) return true;
  }
  return false;
}

// Reads a recent episode of another writer straight from the store, then through the
// cache: the cached copy must not be older. Returns the error, or OK (also when there is
// no other writer's episode yet).
Status CheckPeerIsFresh(StorageBackend& direct, StorageBackend& cached, const std::string& own_tag) {
  EpisodeFilter recent;
  recent.limit = 16;
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<EpisodeStream> stream, direct.ListEpisodes(recent));
  std::optional<std::string> peer;
  for (;;) {
    ENGRAM_ASSIGN_OR_RETURN(std::optional<Episode> next, stream->Next());
    if (!next.has_value()) break;
    if (!HasTag(*next, own_tag)) {
      peer = next->episode_id;
      break;
    }
  }
  stream.reset();
  if (!peer.has_value()) return OkStatus();
  ENGRAM_ASSIGN_OR_RETURN(Episode before, direct.GetEpisode(*peer));
  ENGRAM_ASSIGN_OR_RETURN(Episode seen, cached.GetEpisode(*peer));
  if (seen.steps.size() < before.steps.size() || (before.completed() && !seen.completed())) {
    return InternalError("stale read of " + *peer + ": the store had " + std::to_string(before.steps.size()) +
                         " steps" + (before.completed() ? ", completed" : "") + ", the cache then served " +
                         std::to_string(seen.steps.size()) + (seen.completed() ? ", completed" : ""));
  }
  return OkStatus();
}

int Run(const Flags& flags) {
  SqliteOptions options;
  options.path = flags.db;
  options.durability = flags.durability;
  Result<std::unique_ptr<StorageBackend>> store = OpenSqliteBackend(options);
  if (!store.ok()) return Fail("open " + flags.db, store.status());
  std::unique_ptr<StorageBackend> direct;  // with --cache: the same store, uncached
  if (!flags.cache.empty()) {
    Result<std::unique_ptr<StorageBackend>> plain = OpenSqliteBackend(options);
    if (!plain.ok()) return Fail("open " + flags.db, plain.status());
    direct = *std::move(plain);
    LmdbOptions cache;
    cache.path = flags.cache;
    store = OpenLmdbCache(cache, *std::move(store));
    if (!store.ok()) return Fail("open the cache " + flags.cache, store.status());
  }
  Memory memory(**store, SystemClock(), /*events=*/nullptr);

  for (long i = 0; i < flags.episodes; ++i) {
    const std::string prefix = flags.tag + "/" + std::to_string(i);
    NewEpisode ne;
    ne.task_description = "writer " + flags.tag + " episode " + std::to_string(i);
    ne.task_type = TaskType::kTesting;
    ne.context.domain = "reliability";
    ne.tags = {"reliability", "writer:" + flags.tag};
    ne.metadata_json = R"({"episode":)" + std::to_string(i) + "}";
    Result<std::string> id = memory.CreateEpisode(std::move(ne));
    if (!id.ok()) return Fail("CreateEpisode " + prefix, id.status());

    for (long j = 1; j <= flags.steps; ++j) {
      NewStep step;
      step.tool = j % 2 ? "bash" : "edit_file";
      step.action = prefix + "/step " + std::to_string(j);
      step.parameters_json = R"({"episode":)" + std::to_string(i) + R"(,"step":)" + std::to_string(j) + "}";
      step.result = StepResult{StepStatus::kSuccess, "ok " + step.action, std::nullopt};
      step.latency_ms = j;
      step.tokens_used = 10 * j;
      Result<int> number = memory.AddStep(*id, std::move(step));
      if (!number.ok()) return Fail("AddStep " + prefix + "/" + std::to_string(j), number.status());
      if (*number != j) {
        return Fail("AddStep " + prefix, InternalError("got step number " + std::to_string(*number) +
                                                       ", expected " + std::to_string(j)));
      }
    }

    Outcome outcome;
    outcome.kind = OutcomeKind::kSuccess;
    outcome.verdict = "done " + prefix;
    outcome.verification = Verification{static_cast<int64_t>(flags.steps), 0, true, 0, 90.0};
    Result<Episode> done = memory.CompleteEpisode(*id, std::move(outcome));
    if (!done.ok()) return Fail("CompleteEpisode " + prefix, done.status());

    if (direct != nullptr) {
      Result<Episode> again = (*store)->GetEpisode(*id);
      if (!again.ok()) return Fail("GetEpisode " + prefix, again.status());
      if (!again->completed() || static_cast<long>(again->steps.size()) != flags.steps) {
        return Fail("GetEpisode " + prefix, InternalError("stale read of its own episode: " +
                                                          std::to_string(again->steps.size()) + " steps, " +
                                                          (again->completed() ? "completed" : "not completed")));
      }
      Status peer = CheckPeerIsFresh(*direct, **store, "writer:" + flags.tag);
      if (!peer.ok()) return Fail("after " + prefix, peer);
    }

    if (!WriteLine(flags.out_fd, *id + "\n")) {
      std::fprintf(stderr, "engram_test_writer: error: writing the id to fd %d: %s\n", flags.out_fd,
                   std::strerror(errno));
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace engram

int main(int argc, char** argv) {
  engram::Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) return engram::Usage(("missing value for " + std::string(arg)).c_str());
    const char* value = argv[++i];
    long n = 0;
    if (arg == "--db") {
      flags.db = value;
    } else if (arg == "--episodes") {
      if (!engram::ParseLong(value, 0, &flags.episodes)) return engram::Usage("--episodes: not a count");
    } else if (arg == "--steps") {
      if (!engram::ParseLong(value, 0, &flags.steps) || flags.steps > 1000) {
        return engram::Usage("--steps: must be 0..1000");
      }
    } else if (arg == "--tag") {
      flags.tag = value;
    } else if (arg == "--durability") {
      engram::Result<engram::Durability> d = engram::ParseDurability(value);
      if (!d.ok()) return engram::Usage(d.status().ToString().c_str());
      flags.durability = *d;
    } else if (arg == "--cache") {
      flags.cache = value;
    } else if (arg == "--out-fd") {
      if (!engram::ParseLong(value, 0, &n)) return engram::Usage("--out-fd: not a file descriptor");
      flags.out_fd = static_cast<int>(n);
    } else {
      return engram::Usage(("unknown flag " + std::string(arg)).c_str());
    }
  }
  if (flags.db.empty()) return engram::Usage("--db is required");
  return engram::Run(flags);
}
