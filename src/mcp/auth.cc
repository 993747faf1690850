#include "mcp/auth.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "common/logging.h"
#include "common/strings.h"
#include "common/time_format.h"

namespace engram::mcp {

// Why a fast keyed hash and not crypto_pwhash (Argon2): password hashing is slow on purpose
// so that low-entropy human passwords resist guessing after a leak of the hash file. Our
// secrets are 256 random bits; nobody can enumerate them at any hash speed, so a slow hash
// would only add tens of milliseconds and megabytes of memory to every HTTP request. A
// per-key random salt (the BLAKE2b key) still makes equal keys hash differently and rules
// out precomputed tables.
struct ApiKeyStore::Record {
  KeyInfo info;
  std::string salt_hex;  // 16 random bytes
  std::string hash_hex;  // BLAKE2b-256(key = salt, message = the whole plaintext key)
};

// What the file looked like when last read, to notice changes by other processes.
struct ApiKeyStore::FileState {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  std::chrono::steady_clock::time_point checked_at{};
};

namespace {

constexpr std::string_view kKeyPrefix = "engram_";
constexpr size_t kIdBytes = 6;       // 12 hex digits: public, only needs to be unique
constexpr size_t kSecretBytes = 32;  // 256 bits
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
constexpr int kFileVersion = 1;
constexpr size_t kMaxNameLength = 200;
constexpr size_t kMaxDomainLength = 200;
constexpr auto kReloadInterval = std::chrono::seconds(1);

static_assert(kSaltBytes >= crypto_generichash_KEYBYTES_MIN && kSaltBytes <= crypto_generichash_KEYBYTES_MAX);
static_assert(kHashBytes == crypto_verify_32_BYTES);

using Json = nlohmann::json;

void InitSodium() {
  // Thread-safe and idempotent; fails only when the kernel has no entropy source at all,
  // and then nothing in this file can work.
  static const bool ok = sodium_init() >= 0;
  if (!ok) {
    LogError("libsodium failed to initialise");
    std::abort();
  }
}

std::string ToHex(const unsigned char* data, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, n);
  out.pop_back();
  return out;
}

std::optional<std::vector<unsigned char>> FromHex(std::string_view hex, size_t expected_bytes) {
  if (hex.size() != expected_bytes * 2) return std::nullopt;
  std::vector<unsigned char> out(expected_bytes);
  size_t len = 0;
  if (sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, nullptr) != 0 ||
      len != expected_bytes) {
    return std::nullopt;
  }
  return out;
}

bool IsLowerHex(std::string_view s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string HashKey(std::string_view key, const std::vector<unsigned char>& salt) {
  unsigned char out[kHashBytes];
  crypto_generichash(out, sizeof(out), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                     salt.data(), salt.size());
  std::string hex = ToHex(out, sizeof(out));
  sodium_memzero(out, sizeof(out));
  return hex;
}

// The public id of a well-formed key "engram_<12 hex>_<secret>", else nullopt.
std::optional<std::string_view> KeyId(std::string_view key) {
  if (!key.starts_with(kKeyPrefix)) return std::nullopt;
  std::string_view rest = key.substr(kKeyPrefix.size());
  if (rest.size() < kIdBytes * 2 + 2 || rest[kIdBytes * 2] != '_') return std::nullopt;
  std::string_view id = rest.substr(0, kIdBytes * 2);
  if (!IsLowerHex(id, kIdBytes * 2)) return std::nullopt;
  return id;
}

Result<std::vector<std::string>> NormalizeDomains(std::vector<std::string> domains) {
  std::vector<std::string> out;
  for (const std::string& raw : domains) {
    std::string domain(StripAsciiWhitespace(raw));
    if (domain.empty()) return InvalidArgumentError("empty domain in the key's domain list");
    if (domain.size() > kMaxDomainLength) {
      return InvalidArgumentError("domain longer than " + std::to_string(kMaxDomainLength) + " characters");
    }
    if (!IsValidUtf8(domain)) return InvalidArgumentError("domain is not valid UTF-8");
    bool seen = false;
    for (const std::string& d : out) seen = seen || d == domain;
    if (!seen) out.push_back(std::move(domain));
  }
  return out;
}

// The file as it is on disk now; nullopt if it does not exist.
Result<std::optional<struct stat>> StatFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<struct stat>();
    return UnavailableError("API keys file " + path + ": " + std::strerror(errno));
  }
  return std::optional<struct stat>(st);
}

Result<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return UnavailableError("API keys file " + path + ": " + std::strerror(errno));
  std::string text;
  char buffer[8192];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return UnavailableError("API keys file " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

// Parses the keys file. Errors: kDataLoss naming the file and what is wrong.
template <typename Record>
Result<std::vector<Record>> ParseKeysFile(const std::string& path, const std::string& text) {
  auto bad = [&](const std::string& what) {
    return DataLossError("API keys file " + path + ": " + what + " (was it edited by hand?)");
  };
  Json root = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return bad("not a JSON object");
  if (!root.contains("version") || !root["version"].is_number_integer() || root["version"] != kFileVersion) {
    return bad("unsupported version");
  }
  if (!root.contains("keys") || !root["keys"].is_array()) return bad("no \"keys\" array");
  std::vector<Record> records;
  for (size_t i = 0; i < root["keys"].size(); ++i) {
    const Json& k = root["keys"][i];
    std::string where = "key " + std::to_string(i + 1);
    if (!k.is_object()) return bad(where + " is not an object");
    auto str = [&](const char* field) -> std::optional<std::string> {
      if (!k.contains(field) || !k[field].is_string()) return std::nullopt;
      return k[field].get<std::string>();
    };
    Record r;
    std::optional<std::string> id = str("id"), name = str("name"), created = str("created_at"),
                               salt = str("salt"), hash = str("hash");
    if (!id || !IsLowerHex(*id, kIdBytes * 2)) return bad(where + ": bad \"id\"");
    if (!name) return bad(where + ": bad \"name\"");
    if (!salt || !IsLowerHex(*salt, kSaltBytes * 2)) return bad(where + ": bad \"salt\"");
    if (!hash || !IsLowerHex(*hash, kHashBytes * 2)) return bad(where + ": bad \"hash\"");
    if (!created) return bad(where + ": bad \"created_at\"");
    Result<Timestamp> created_at = ParseTimestamp(*created);
    if (!created_at.ok()) return bad(where + ": bad \"created_at\"");
    if (!k.contains("revoked") || !k["revoked"].is_boolean()) return bad(where + ": bad \"revoked\"");
    if (!k.contains("domains") || !k["domains"].is_array()) return bad(where + ": bad \"domains\"");
    for (const Json& d : k["domains"]) {
      if (!d.is_string() || d.get<std::string>().empty()) return bad(where + ": bad \"domains\"");
      r.info.domains.push_back(d.get<std::string>());
    }
    for (const Record& other : records) {
      if (other.info.id == *id) return bad("two keys with id " + *id);
    }
    r.info.id = *id;
    r.info.name = *name;
    r.info.created_at = *created_at;
    r.info.revoked = k["revoked"].get<bool>();
    r.salt_hex = *salt;
    r.hash_hex = *hash;
    records.push_back(std::move(r));
  }
  return records;
}

template <typename Record>
std::string SerializeKeysFile(const std::vector<Record>& records) {
  nlohmann::ordered_json keys = nlohmann::ordered_json::array();
  for (const Record& r : records) {
    nlohmann::ordered_json k;
    k["id"] = r.info.id;
    k["name"] = r.info.name;
    k["created_at"] = FormatTimestamp(r.info.created_at);
    k["domains"] = r.info.domains;
    k["revoked"] = r.info.revoked;
    k["salt"] = r.salt_hex;
    k["hash"] = r.hash_hex;
    keys.push_back(std::move(k));
  }
  nlohmann::ordered_json root;
  root["version"] = kFileVersion;
  root["keys"] = std::move(keys);
  return root.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

// Creates the missing directories of `path`'s parent, mode 0700 (they hold credentials).
Status MakeParentDirs(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return OkStatus();
  std::string dir = path.substr(0, slash);
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return UnavailableError("cannot create directory " + prefix + ": " + std::strerror(errno));
    }
  }
  return OkStatus();
}

// Writes `text` to `path` so that readers see the old file or the new one, never a mix:
// a temp file in the same directory, fsync, rename over, fsync the directory.
Status WriteFileAtomically(const std::string& path, const std::string& text) {
  ENGRAM_RETURN_IF_ERROR(MakeParentDirs(path));
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = ::mkstemp(tmp.data());  // mode 0600
  if (fd < 0) return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
  auto fail = [&](const char* what) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return UnavailableError(std::string("cannot write ") + path + ": " + what + ": " + std::strerror(err));
  };
  if (::fchmod(fd, 0600) != 0) return fail("chmod");
  size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return UnavailableError("cannot write " + path + ": close: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return UnavailableError("cannot write " + path + ": rename: " + std::strerror(err));
  }
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // makes the rename durable; failure here leaves a correct file anyway
    ::close(dfd);
  }
  return OkStatus();
}

// Holds an exclusive flock on "<path>.lock" so read-modify-write cycles of several
// processes (two `engram keys create` at once) do not lose each other's keys.
class FileLock {
 public:
  static Result<std::unique_ptr<FileLock>> Acquire(const std::string& path) {
    ENGRAM_RETURN_IF_ERROR(MakeParentDirs(path));
    std::string lock_path = path + ".lock";
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return UnavailableError("cannot lock " + lock_path + ": " + std::strerror(errno));
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return UnavailableError("cannot lock " + lock_path + ": " + std::strerror(err));
    }
    return std::unique_ptr<FileLock>(new FileLock(fd));
  }
  ~FileLock() { ::close(fd_); }  // releases the lock
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

std::string RandomHex(size_t bytes) {
  InitSodium();
  std::vector<unsigned char> buf(bytes);
  randombytes_buf(buf.data(), buf.size());
  return ToHex(buf.data(), buf.size());
}

ApiKeyStore::ApiKeyStore(std::string path, Clock& clock)
    : path_(std::move(path)), clock_(&clock), file_state_(std::make_unique<FileState>()) {}

ApiKeyStore::~ApiKeyStore() = default;

ApiKeyStore::ApiKeyStore(ApiKeyStore&& other) noexcept : path_(std::move(other.path_)), clock_(other.clock_) {
  MutexLock lock(other.mu_);
  MutexLock self(mu_);
  records_ = std::move(other.records_);
  file_state_ = std::move(other.file_state_);
}

ApiKeyStore& ApiKeyStore::operator=(ApiKeyStore&& other) noexcept {
  if (this == &other) return *this;
  path_ = std::move(other.path_);
  clock_ = other.clock_;
  MutexLock lock(other.mu_);
  MutexLock self(mu_);
  records_ = std::move(other.records_);
  file_state_ = std::move(other.file_state_);
  return *this;
}

namespace {

// Reads and checks the file. `state` receives what it looked like.
template <typename Record, typename FileState>
Result<std::vector<Record>> ReadKeys(const std::string& path, FileState& state) {
  ENGRAM_ASSIGN_OR_RETURN(std::optional<struct stat> st, StatFile(path));
  state.checked_at = std::chrono::steady_clock::now();
  if (!st.has_value()) {
    state.exists = false;
    return std::vector<Record>();
  }
  if (!S_ISREG(st->st_mode)) return UnavailableError("API keys file " + path + " is not a regular file");
  if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return FailedPreconditionError("API keys file " + path +
                                   " may be written by other users, who could add their own keys; run: chmod 600 " +
                                   path);
  }
  ENGRAM_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Record> records, ParseKeysFile<Record>(path, text));
  state.exists = true;
  state.dev = st->st_dev;
  state.ino = st->st_ino;
  state.size = st->st_size;
  state.mtime_ns = MtimeNs(*st);
  return records;
}

}  // namespace

Result<ApiKeyStore> ApiKeyStore::Load(std::string path, Clock& clock) {
  InitSodium();
  ApiKeyStore store(std::move(path), clock);
  if (store.path_.empty()) return store;
  {
    MutexLock lock(store.mu_);
    Result<std::vector<Record>> records = ReadKeys<Record, FileState>(store.path_, *store.file_state_);
    if (!records.ok()) return records.status();
    store.records_ = *std::move(records);
  }  // unlocked before the move out, which locks again
  return store;
}

void ApiKeyStore::MaybeReload() const {
  if (path_.empty()) return;
  MutexLock lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (now - file_state_->checked_at < kReloadInterval) return;
  file_state_->checked_at = now;
  Result<std::optional<struct stat>> st = StatFile(path_);
  if (!st.ok()) return;
  bool changed;
  if (!st->has_value()) {
    changed = file_state_->exists;
  } else {
    const struct stat& s = **st;
    changed = !file_state_->exists || s.st_dev != file_state_->dev || s.st_ino != file_state_->ino ||
              s.st_size != file_state_->size || MtimeNs(s) != file_state_->mtime_ns;
  }
  if (!changed) return;
  FileState state;
  Result<std::vector<Record>> records = ReadKeys<Record, FileState>(path_, state);
  if (!records.ok()) {
    LogError("API keys file changed but cannot be used; keeping the keys read before",
             {{"path", path_}, {"error", records.status().ToString()}});
    return;
  }
  LogInfo("API keys file reloaded", {{"path", path_}, {"keys", std::to_string(records->size())}});
  records_ = *std::move(records);
  *file_state_ = state;
}

Result<CreatedKey> ApiKeyStore::Create(std::string name, std::vector<std::string> domains) {
  if (path_.empty()) {
    return FailedPreconditionError("no API keys file: set auth.keys_file (HOME is not set, so it has no default)");
  }
  name = std::string(StripAsciiWhitespace(name));
  if (name.size() > kMaxNameLength) {
    return InvalidArgumentError("key name longer than " + std::to_string(kMaxNameLength) + " characters");
  }
  if (!IsValidUtf8(name)) return InvalidArgumentError("key name is not valid UTF-8");
  ENGRAM_ASSIGN_OR_RETURN(domains, NormalizeDomains(std::move(domains)));

  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> file_lock, FileLock::Acquire(path_));
  MutexLock lock(mu_);
  FileState state;
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Record> records, (ReadKeys<Record, FileState>(path_, state)));

  std::string id;
  for (bool unique = false; !unique;) {
    id = RandomHex(kIdBytes);
    unique = true;
    for (const Record& r : records) unique = unique && r.info.id != id;
  }
  unsigned char secret[kSecretBytes];
  randombytes_buf(secret, sizeof(secret));
  std::string secret_text(sodium_base64_ENCODED_LEN(kSecretBytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(secret_text.data(), secret_text.size(), secret, sizeof(secret),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(secret, sizeof(secret));
  secret_text.resize(std::strlen(secret_text.c_str()));

  CreatedKey created;
  created.key = std::string(kKeyPrefix) + id + "_" + secret_text;
  sodium_memzero(secret_text.data(), secret_text.size());
  std::vector<unsigned char> salt(kSaltBytes);
  randombytes_buf(salt.data(), salt.size());

  Record record;
  record.info.id = id;
  record.info.name = std::move(name);
  record.info.created_at = clock_->Now();
  record.info.domains = std::move(domains);
  record.salt_hex = ToHex(salt.data(), salt.size());
  record.hash_hex = HashKey(created.key, salt);
  created.info = record.info;
  records.push_back(std::move(record));

  ENGRAM_RETURN_IF_ERROR(WriteFileAtomically(path_, SerializeKeysFile(records)));
  records_ = std::move(records);
  // Re-stat at the next Verify: the rename changed the inode.
  *file_state_ = FileState{};
  return created;
}

Status ApiKeyStore::Revoke(std::string_view id) {
  if (path_.empty()) {
    return FailedPreconditionError("no API keys file: set auth.keys_file (HOME is not set, so it has no default)");
  }
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> file_lock, FileLock::Acquire(path_));
  MutexLock lock(mu_);
  FileState state;
  ENGRAM_ASSIGN_OR_RETURN(std::vector<Record> records, (ReadKeys<Record, FileState>(path_, state)));
  Record* found = nullptr;
  for (Record& r : records) {
    if (r.info.id == id) found = &r;
  }
  if (found == nullptr) {
    return NotFoundError("no API key with id \"" + std::string(id.substr(0, 64)) +
                         "\" (engram keys list shows the ids)");
  }
  if (!found->info.revoked) {
    found->info.revoked = true;
    ENGRAM_RETURN_IF_ERROR(WriteFileAtomically(path_, SerializeKeysFile(records)));
  }
  records_ = std::move(records);
  *file_state_ = FileState{};
  return OkStatus();
}

std::vector<KeyInfo> ApiKeyStore::List() const {
  MaybeReload();
  MutexLock lock(mu_);
  std::vector<KeyInfo> out;
  for (const Record& r : records_) out.push_back(r.info);
  return out;
}

Result<Principal> ApiKeyStore::Verify(std::string_view presented) const {
  MaybeReload();
  std::optional<std::string_view> id = KeyId(presented);
  if (!id.has_value()) return PermissionDeniedError("malformed API key");
  std::string salt_hex, hash_hex;
  Principal principal;
  bool revoked = false;
  {
    MutexLock lock(mu_);
    const Record* found = nullptr;
    for (const Record& r : records_) {
      if (r.info.id == *id) found = &r;
    }
    if (found == nullptr) return PermissionDeniedError("unknown API key id " + std::string(*id));
    salt_hex = found->salt_hex;
    hash_hex = found->hash_hex;
    revoked = found->info.revoked;
    principal.key_id = found->info.id;
    principal.allowed_domains = found->info.domains;
  }
  std::optional<std::vector<unsigned char>> salt = FromHex(salt_hex, kSaltBytes);
  std::optional<std::vector<unsigned char>> expected = FromHex(hash_hex, kHashBytes);
  if (!salt || !expected) return PermissionDeniedError("corrupt record for API key " + principal.key_id);
  unsigned char actual[kHashBytes];
  crypto_generichash(actual, sizeof(actual), reinterpret_cast<const unsigned char*>(presented.data()),
                     presented.size(), salt->data(), salt->size());
  bool match = crypto_verify_32(actual, expected->data()) == 0;  // constant time
  if (!match) return PermissionDeniedError("wrong secret for API key " + principal.key_id);
  // Revocation is told only to someone who holds the secret.
  if (revoked) return PermissionDeniedError("API key " + principal.key_id + " is revoked");
  return principal;
}

bool ApiKeyStore::HasActiveKeys() const {
  MaybeReload();
  MutexLock lock(mu_);
  for (const Record& r : records_) {
    if (!r.info.revoked) return true;
  }
  return false;
}

}  // namespace engram::mcp
