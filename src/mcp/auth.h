// API keys for the Streamable HTTP transport (DESIGN §7): `engram keys create` makes one,
// the transport asks Verify() for every request, and a key may be limited to a set of
// domains, which becomes the session's Principal.
//
//   ENGRAM_ASSIGN_OR_RETURN(ApiKeyStore keys, ApiKeyStore::Load(config.keys_file));
//   ENGRAM_ASSIGN_OR_RETURN(CreatedKey created, keys.Create("ci", {"web-api"}));
//   std::cout << created.key;                        // shown once, never stored
//   Result<Principal> who = keys.Verify(presented);  // in the transport
//
// A key reads "engram_<id>_<secret>": <id> is 12 hex digits, public, and names the key in
// `engram keys list`; <secret> is 32 random bytes in unpadded base64url. Only a salted
// BLAKE2b-256 hash of the key is stored, in a JSON file (mode 0600) that is replaced
// atomically on every change. Several processes may share the file: Create and Revoke
// lock it and re-read it first, and Verify notices when another process changed it, so
// `engram keys revoke` takes effect on a running server within about a second.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "engram/clock.h"
#include "engram/result.h"
#include "mcp/tool_registry.h"

namespace engram::mcp {

// What `engram keys list` shows about a key. Never holds the key itself.
struct KeyInfo {
  std::string id;       // public prefix, 12 hex digits
  std::string name;     // may be empty
  Timestamp created_at{};
  std::vector<std::string> domains;  // empty: every domain
  bool revoked = false;
};

struct CreatedKey {
  KeyInfo info;
  std::string key;  // the plaintext key: give it to the user now; it cannot be recovered
};

// Thread-safe. Movable (not while other threads use it); not copyable.
class ApiKeyStore {
 public:
  // Reads the keys file at `path`. A missing file is an empty store (created on the
  // first Create). An empty `path` is an empty store that cannot be changed: Create and
  // Revoke then fail with kFailedPrecondition (there is nowhere to keep keys).
  //
  // Errors: kDataLoss if the file is not a keys file engram wrote (bad JSON, a record
  // without a valid hash, ...); kFailedPrecondition if anyone but its owner may write it
  // (someone else could add keys); kUnavailable if it cannot be read.
  static Result<ApiKeyStore> Load(std::string path, Clock& clock = SystemClock());

  ApiKeyStore(ApiKeyStore&& other) noexcept;
  ApiKeyStore& operator=(ApiKeyStore&& other) noexcept;
  ApiKeyStore(const ApiKeyStore&) = delete;
  ApiKeyStore& operator=(const ApiKeyStore&) = delete;
  ~ApiKeyStore();

  // Makes a new key allowed to reach `domains` (empty: all domains) and saves the file.
  // Returns the plaintext key, which exists only in the result.
  // Errors: kInvalidArgument for an empty or overlong domain or name; kFailedPrecondition
  // without a path; kUnavailable if the file cannot be written; Load's errors when
  // re-reading it.
  Result<CreatedKey> Create(std::string name, std::vector<std::string> domains) ENGRAM_LOCKS_EXCLUDED(mu_);

  // Revokes the key with public id `id` (revoking a revoked key is OK) and saves the file.
  // Errors: kNotFound for an unknown id; otherwise as Create.
  Status Revoke(std::string_view id) ENGRAM_LOCKS_EXCLUDED(mu_);

  // Every key, revoked ones included, oldest first.
  std::vector<KeyInfo> List() const ENGRAM_LOCKS_EXCLUDED(mu_);

  // Checks a key a client presented (in constant time against the stored hash) and
  // returns who it is: {key_id, allowed_domains}.
  // Errors: kPermissionDenied for a malformed, unknown, wrong or revoked key. The message
  // says which, for logs; do not send it to the client.
  Result<Principal> Verify(std::string_view presented) const ENGRAM_LOCKS_EXCLUDED(mu_);

  // True if at least one key is not revoked.
  bool HasActiveKeys() const ENGRAM_LOCKS_EXCLUDED(mu_);

  const std::string& path() const { return path_; }

 private:
  struct Record;
  struct FileState;

  ApiKeyStore(std::string path, Clock& clock);

  // Re-reads the file if another process changed it since the last look, at most once a
  // second. Keeps the keys it has if the new file cannot be read.
  void MaybeReload() const ENGRAM_LOCKS_EXCLUDED(mu_);

  std::string path_;
  Clock* clock_;

  mutable Mutex mu_;
  mutable std::vector<Record> records_ ENGRAM_GUARDED_BY(mu_);
  mutable std::unique_ptr<FileState> file_state_ ENGRAM_GUARDED_BY(mu_);
};

// `bytes` cryptographically random bytes as lower-case hex (2 * bytes characters), for
// session ids and other unguessable tokens. Thread-safe.
std::string RandomHex(size_t bytes);

}  // namespace engram::mcp
