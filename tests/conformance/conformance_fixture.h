// The fixture every conformance suite shares: one store per case, opened by the backend's
// factory in a fresh folder, skipped when the backend is not available here.
//
//   class MyConformance : public ConformanceTest {};
//   TEST_P(MyConformance, ...) { store_->...; }
//   INSTANTIATE_TEST_SUITE_P(AllBackends, MyConformance, ::testing::ValuesIn(AllBackendFactories()),
//                            BackendName);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/fake_clock.h"
#include "conformance/backend_factories.h"
#include "engram/storage.h"
#include "testing/temp_dir.h"

namespace engram::testing {

class ConformanceTest : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    if (GetParam().skip_reason) {
      std::string why = GetParam().skip_reason();
      if (!why.empty()) GTEST_SKIP() << why;
    }
    Reopen();
  }

  // Another handle on the same store (for PostgreSQL the same schema, for SQLite the same
  // file): what a second process would see. Null (and a test failure) when it cannot open.
  std::unique_ptr<StorageBackend> Open() {
    auto r = GetParam().open(dir_.path());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *std::move(r) : nullptr;
  }

  // Closes store_ and opens it again.
  void Reopen() {
    store_.reset();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  int64_t Generation() {
    auto g = store_->Generation();
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    return g.ok() ? *g : -1;
  }

  // Everything a stream (EpisodeStream, VectorStream) yields, failing the test on an error.
  template <typename T, typename Stream>
  static std::vector<T> Drain(Result<std::unique_ptr<Stream>> stream) {
    std::vector<T> out;
    EXPECT_TRUE(stream.ok()) << stream.status().ToString();
    if (!stream.ok()) return out;
    for (;;) {
      auto next = (*stream)->Next();
      EXPECT_TRUE(next.ok()) << next.status().ToString();
      if (!next.ok() || !next->has_value()) break;
      out.push_back(**std::move(next));
    }
    return out;
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<StorageBackend> store_;
};

// Names each instantiation after its backend ("Sqlite", "Postgres", ...).
inline std::string BackendName(const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; }

}  // namespace engram::testing
