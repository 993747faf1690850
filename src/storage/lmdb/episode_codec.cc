#include "storage/lmdb/episode_codec.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include <msgpack/pack.hpp>
#include <msgpack/sbuffer.hpp>

namespace engram::lmdb {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// A checksum against corrupt bytes (not an adversary): four multiply-xorshift lanes over
// 8-byte words, so it runs at memory speed instead of FNV's one multiply per byte.
uint64_t Checksum(std::string_view bytes) {
  constexpr uint64_t kPrime = 0x9E3779B97F4A7C15ULL;
  auto mix = [](uint64_t h, uint64_t w) {
    h = (h ^ w) * kPrime;
    return h ^ (h >> 29);
  };
  uint64_t lanes[4] = {0x243F6A8885A308D3ULL, 0x13198A2E03707344ULL, 0xA4093822299F31D0ULL,
                       0x082EFA98EC4E6C89ULL};
  const char* p = bytes.data();
  size_t n = bytes.size();
  for (; n >= 32; p += 32, n -= 32) {
    for (int i = 0; i < 4; ++i) {
      uint64_t w;
      std::memcpy(&w, p + 8 * i, 8);
      lanes[i] = mix(lanes[i], w);
    }
  }
  uint64_t h = bytes.size();
  for (uint64_t lane : lanes) h = mix(h, lane);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix(h, w);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  return mix(mix(h, tail), n);
}

int64_t Millis(Timestamp t) { return t.time_since_epoch().count(); }
Timestamp FromMillis(int64_t ms) { return Timestamp(std::chrono::milliseconds(ms)); }

// ---- Encoding: positional arrays, optional fields as nil. ----

void PackString(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void PackOptString(Packer& pk, const std::optional<std::string>& s) {
  if (s) {
    PackString(pk, *s);
  } else {
    pk.pack_nil();
  }
}

void PackOptInt(Packer& pk, const std::optional<int64_t>& v) {
  if (v) {
    pk.pack_int64(*v);
  } else {
    pk.pack_nil();
  }
}

void PackStrings(Packer& pk, const std::vector<std::string>& v) {
  pk.pack_array(static_cast<uint32_t>(v.size()));
  for (const std::string& s : v) PackString(pk, s);
}

void PackContext(Packer& pk, const TaskContext& c) {
  pk.pack_array(7);
  PackString(pk, c.domain);
  PackOptString(pk, c.language);
  PackOptString(pk, c.framework);
  pk.pack_int64(static_cast<int64_t>(c.complexity));
  PackStrings(pk, c.tags);
  PackOptString(pk, c.repo);
  PackOptString(pk, c.commit);
}

void PackStep(Packer& pk, const Step& s) {
  pk.pack_array(8);
  pk.pack_int64(s.step_number);
  pk.pack_int64(Millis(s.timestamp));
  PackString(pk, s.tool);
  PackString(pk, s.action);
  PackString(pk, s.parameters_json);
  if (s.result) {
    pk.pack_array(3);
    pk.pack_int64(static_cast<int64_t>(s.result->status));
    PackOptString(pk, s.result->output);
    PackOptString(pk, s.result->message);
  } else {
    pk.pack_nil();
  }
  PackOptInt(pk, s.latency_ms);
  PackOptInt(pk, s.tokens_used);
}

void PackOutcome(Packer& pk, const Outcome& o) {
  pk.pack_array(8);
  pk.pack_int64(static_cast<int64_t>(o.kind));
  PackString(pk, o.verdict);
  PackStrings(pk, o.artifacts);
  PackStrings(pk, o.completed);
  PackStrings(pk, o.failed);
  PackString(pk, o.reason);
  PackOptString(pk, o.error_details);
  if (o.verification) {
    const Verification& v = *o.verification;
    pk.pack_array(5);
    PackOptInt(pk, v.tests_passed);
    PackOptInt(pk, v.tests_failed);
    if (v.build_ok) {
      *v.build_ok ? pk.pack_true() : pk.pack_false();
    } else {
      pk.pack_nil();
    }
    PackOptInt(pk, v.lint_warnings);
    if (v.coverage_pct) {
      pk.pack_double(*v.coverage_pct);
    } else {
      pk.pack_nil();
    }
  } else {
    pk.pack_nil();
  }
}

void PackEpisode(Packer& pk, const Episode& e) {
  pk.pack_array(13);
  PackString(pk, e.episode_id);
  PackString(pk, e.task_description);
  pk.pack_int64(static_cast<int64_t>(e.task_type));
  PackContext(pk, e.context);
  pk.pack_int64(Millis(e.start_time));
  PackOptInt(pk, e.end_time ? std::optional<int64_t>(Millis(*e.end_time)) : std::nullopt);
  pk.pack_array(static_cast<uint32_t>(e.steps.size()));
  for (const Step& s : e.steps) PackStep(pk, s);
  if (e.outcome) {
    PackOutcome(pk, *e.outcome);
  } else {
    pk.pack_nil();
  }
  if (e.reward) {
    const Reward& r = *e.reward;
    pk.pack_array(6);
    for (double d : {r.total, r.base, r.efficiency, r.complexity_bonus, r.quality_multiplier, r.learning_bonus}) {
      pk.pack_double(d);
    }
  } else {
    pk.pack_nil();
  }
  if (e.reflection) {
    pk.pack_array(3);
    PackStrings(pk, e.reflection->successes);
    PackStrings(pk, e.reflection->improvements);
    PackStrings(pk, e.reflection->insights);
  } else {
    pk.pack_nil();
  }
  PackStrings(pk, e.pattern_ids);
  PackStrings(pk, e.tags);
  PackString(pk, e.metadata_json);
}

// ---- Decoding: a pull reader over the msgpack bytes. ----
//
// msgpack-cxx's unpack builds an object tree in a zone and throws on malformed input; a
// cached read is mostly decoding, so values are read in place instead. Every read checks
// the type byte and the bytes left; the first mismatch poisons the reader, and every later
// read returns an empty value.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool failed() const { return failed_; }
  bool at_end() const { return p_ == end_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }

  // The element count of an array, which must be `n`.
  bool Array(uint32_t n) { return ArrayHeader() == n && !failed_; }

  // An array header whose count is plausible for what is left (each element takes a byte).
  uint32_t ArrayHeader() {
    uint8_t t = Byte();
    uint64_t n = 0;
    if (t >= 0x90 && t <= 0x9f) {
      n = t & 0x0f;
    } else if (t == 0xdc) {
      n = BigEndian(2);
    } else if (t == 0xdd) {
      n = BigEndian(4);
    } else {
      return Fail<uint32_t>();
    }
    if (n > left()) return Fail<uint32_t>();
    return static_cast<uint32_t>(n);
  }

  // Consumes a nil if one is next.
  bool Nil() {
    if (failed_ || p_ == end_ || static_cast<uint8_t>(*p_) != 0xc0) return false;
    ++p_;
    return true;
  }

  int64_t Int() {
    uint8_t t = Byte();
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return static_cast<int8_t>(t);
    switch (t) {
      case 0xcc: return static_cast<int64_t>(BigEndian(1));
      case 0xcd: return static_cast<int64_t>(BigEndian(2));
      case 0xce: return static_cast<int64_t>(BigEndian(4));
      case 0xcf: {
        uint64_t v = BigEndian(8);
        if (v > static_cast<uint64_t>(INT64_MAX)) return Fail<int64_t>();
        return static_cast<int64_t>(v);
      }
      case 0xd0: return static_cast<int8_t>(BigEndian(1));
      case 0xd1: return static_cast<int16_t>(BigEndian(2));
      case 0xd2: return static_cast<int32_t>(BigEndian(4));
      case 0xd3: return static_cast<int64_t>(BigEndian(8));
      default: return Fail<int64_t>();
    }
  }

  uint64_t UInt() {
    uint8_t t = Byte();
    if (t <= 0x7f) return t;
    switch (t) {
      case 0xcc: return BigEndian(1);
      case 0xcd: return BigEndian(2);
      case 0xce: return BigEndian(4);
      case 0xcf: return BigEndian(8);
      default: return Fail<uint64_t>();
    }
  }

  int64_t IntInRange(int64_t min, int64_t max) {
    int64_t v = Int();
    if (v < min || v > max) return Fail<int64_t>();
    return v;
  }

  double Double() {
    if (failed_ || p_ == end_) return Fail<double>();
    const uint8_t t = static_cast<uint8_t>(*p_);
    if (t == 0xcb) {
      ++p_;
      uint64_t bits = BigEndian(8);
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return d;
    }
    if (t == 0xca) {
      ++p_;
      uint32_t bits = static_cast<uint32_t>(BigEndian(4));
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    // msgpack-c packs integral doubles as integers (exactly: it checks the round trip).
    if (t <= 0x7f || t == 0xcc || t == 0xcd || t == 0xce || t == 0xcf) return static_cast<double>(UInt());
    return static_cast<double>(Int());
  }

  bool Bool() {
    uint8_t t = Byte();
    if (t == 0xc2) return false;
    if (t == 0xc3) return true;
    return Fail<bool>();
  }

  std::string_view Str() {
    uint8_t t = Byte();
    uint64_t n = 0;
    if (t >= 0xa0 && t <= 0xbf) {
      n = t & 0x1f;
    } else if (t == 0xd9) {
      n = BigEndian(1);
    } else if (t == 0xda) {
      n = BigEndian(2);
    } else if (t == 0xdb) {
      n = BigEndian(4);
    } else {
      return Fail<std::string_view>();
    }
    return Take(n);
  }

  std::string_view Bin() {
    uint8_t t = Byte();
    uint64_t n = 0;
    if (t == 0xc4) {
      n = BigEndian(1);
    } else if (t == 0xc5) {
      n = BigEndian(2);
    } else if (t == 0xc6) {
      n = BigEndian(4);
    } else {
      return Fail<std::string_view>();
    }
    return Take(n);
  }

  std::string String() { return std::string(Str()); }
  std::optional<std::string> OptString() {
    if (Nil()) return std::nullopt;
    return String();
  }
  std::optional<int64_t> OptInt() {
    if (Nil()) return std::nullopt;
    return Int();
  }
  std::vector<std::string> Strings() {
    std::vector<std::string> out;
    const uint32_t n = ArrayHeader();
    out.reserve(std::min<uint32_t>(n, 64));
    for (uint32_t i = 0; i < n && !failed_; ++i) out.emplace_back(Str());
    return out;
  }

  template <typename T>
  T Fail() {
    failed_ = true;
    p_ = end_;
    return T{};
  }

 private:
  uint8_t Byte() {
    if (failed_ || p_ == end_) return Fail<uint8_t>();
    return static_cast<uint8_t>(*p_++);
  }
  uint64_t BigEndian(int bytes) {
    if (failed_ || left() < static_cast<size_t>(bytes)) return Fail<uint64_t>();
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(*p_++);
    return v;
  }
  std::string_view Take(uint64_t n) {
    if (failed_ || n > left()) return Fail<std::string_view>();
    std::string_view out(p_, static_cast<size_t>(n));
    p_ += n;
    return out;
  }

  const char* p_;
  const char* const end_;
  bool failed_ = false;
};

template <typename Enum>
Enum EnumOf(Reader& r, Enum last) {
  return static_cast<Enum>(r.IntInRange(0, static_cast<int64_t>(last)));
}

void ReadContext(Reader& r, TaskContext& c) {
  if (!r.Array(7)) return;
  c.domain = r.String();
  c.language = r.OptString();
  c.framework = r.OptString();
  c.complexity = EnumOf(r, Complexity::kComplex);
  c.tags = r.Strings();
  c.repo = r.OptString();
  c.commit = r.OptString();
}

void ReadStep(Reader& r, Step& s) {
  if (!r.Array(8)) return;
  s.step_number = static_cast<int>(r.IntInRange(INT32_MIN, INT32_MAX));
  s.timestamp = FromMillis(r.Int());
  s.tool = r.String();
  s.action = r.String();
  s.parameters_json = r.String();
  if (!r.Nil() && r.Array(3)) {
    StepResult result;
    result.status = EnumOf(r, StepStatus::kTimeout);
    result.output = r.OptString();
    result.message = r.OptString();
    s.result = std::move(result);
  }
  s.latency_ms = r.OptInt();
  s.tokens_used = r.OptInt();
}

void ReadOutcome(Reader& r, Outcome& out) {
  if (!r.Array(8)) return;
  out.kind = EnumOf(r, OutcomeKind::kFailure);
  out.verdict = r.String();
  out.artifacts = r.Strings();
  out.completed = r.Strings();
  out.failed = r.Strings();
  out.reason = r.String();
  out.error_details = r.OptString();
  if (!r.Nil() && r.Array(5)) {
    Verification v;
    v.tests_passed = r.OptInt();
    v.tests_failed = r.OptInt();
    if (!r.Nil()) v.build_ok = r.Bool();
    v.lint_warnings = r.OptInt();
    if (!r.Nil()) v.coverage_pct = r.Double();
    out.verification = v;
  }
}

// False if `r` does not hold exactly one episode.
bool ReadEpisode(Reader& r, Episode& e) {
  if (!r.Array(13)) return false;
  e.episode_id = r.String();
  e.task_description = r.String();
  e.task_type = EnumOf(r, TaskType::kOther);
  ReadContext(r, e.context);
  e.start_time = FromMillis(r.Int());
  if (std::optional<int64_t> end = r.OptInt()) e.end_time = FromMillis(*end);
  const uint32_t steps = r.ArrayHeader();
  if (steps > kMaxStepsPerEpisode) return false;
  e.steps.resize(steps);
  for (Step& s : e.steps) ReadStep(r, s);
  if (!r.Nil()) {
    Outcome out;
    ReadOutcome(r, out);
    e.outcome = std::move(out);
  }
  if (!r.Nil() && r.Array(6)) {
    Reward w;
    w.total = r.Double();
    w.base = r.Double();
    w.efficiency = r.Double();
    w.complexity_bonus = r.Double();
    w.quality_multiplier = r.Double();
    w.learning_bonus = r.Double();
    e.reward = w;
  }
  if (!r.Nil() && r.Array(3)) {
    Reflection f;
    f.successes = r.Strings();
    f.improvements = r.Strings();
    f.insights = r.Strings();
    e.reflection = std::move(f);
  }
  e.pattern_ids = r.Strings();
  e.tags = r.Strings();
  e.metadata_json = r.String();
  return !r.failed() && r.at_end();
}

}  // namespace

std::string EncodeCachedEpisode(const Episode& episode, int64_t filled_at_ms, uint32_t version) {
  msgpack::sbuffer payload;
  {
    Packer pk(payload);
    PackEpisode(pk, episode);
  }
  msgpack::sbuffer out(payload.size() + 32);
  Packer pk(out);
  pk.pack_array(4);
  pk.pack_uint32(version);
  pk.pack_int64(filled_at_ms);
  pk.pack_uint64(Checksum(std::string_view(payload.data(), payload.size())));
  pk.pack_bin(static_cast<uint32_t>(payload.size()));
  pk.pack_bin_body(payload.data(), static_cast<uint32_t>(payload.size()));
  return std::string(out.data(), out.size());
}

Result<CachedEpisode> DecodeCachedEpisode(std::string_view bytes) {
  Reader r(bytes);
  const uint32_t fields = r.ArrayHeader();
  if (r.failed() || fields < 1) return DataLossError("cached value has no codec version");
  const uint64_t version = r.UInt();
  if (r.failed()) return DataLossError("cached value has no codec version");
  if (version != kCodecVersion) {
    return FailedPreconditionError("cached value has codec version " + std::to_string(version) +
                                   ", this build reads " + std::to_string(kCodecVersion));
  }
  CachedEpisode out;
  if (fields != 4) return DataLossError("cached value is malformed");
  out.filled_at_ms = r.Int();
  const uint64_t checksum = r.UInt();
  const std::string_view payload = r.Bin();
  if (r.failed() || !r.at_end()) return DataLossError("cached value is malformed");
  if (Checksum(payload) != checksum) return DataLossError("cached value fails its checksum");
  Reader episode(payload);
  if (!ReadEpisode(episode, out.episode)) return DataLossError("cached episode is malformed");
  return out;
}

}  // namespace engram::lmdb
