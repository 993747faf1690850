#include "cli/cli_app.h"

#include <sqlite3.h>

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/output.h"
#include "common/logging.h"
#include "core/redaction.h"
#include "server/open_retrieval.h"
#include "storage/sqlite/sqlite_schema.h"
#include "server/open_store.h"
#include "server/serve.h"

#ifndef ENGRAM_VERSION
#define ENGRAM_VERSION "0.0.0"
#endif

namespace engram::cli {

Result<const Config*> Session::config() {
  if (config_) return &*config_;
  ConfigInputs inputs;
  inputs.config_file = options_.config_file;
  for (const std::string& set : options_.sets) {
    ENGRAM_ASSIGN_OR_RETURN(ConfigFlag flag, ParseSetFlag(set));
    inputs.flags.push_back(std::move(flag));
  }
  // Dedicated flags come after --set so they win, whatever the order typed.
  if (options_.db) inputs.flags.push_back({"storage.db", *options_.db, "--db"});
  if (options_.store) inputs.flags.push_back({"storage.url", *options_.store, "--store"});
  if (options_.durability) inputs.flags.push_back({"storage.durability", *options_.durability, "--durability"});
  if (options_.log_level) inputs.flags.push_back({"log.level", *options_.log_level, "--log-level"});
  if (options_.log_format) inputs.flags.push_back({"log.format", *options_.log_format, "--log-format"});
  ENGRAM_ASSIGN_OR_RETURN(Config config, LoadConfig(inputs));
  InitLogging(config.log_level, config.log_format);
  config_ = std::move(config);
  config_inputs_ = std::move(inputs);
  return &*config_;
}

Result<Memory*> Session::memory() {
  if (memory_) return memory_.get();
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, this->config());
  Result<std::unique_ptr<StorageBackend>> store = server::OpenStore(*config);
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
  memory_ = std::make_unique<Memory>(*store_, SystemClock(), /*events=*/nullptr, NewRedactor(config->redaction));
  return memory_.get();
}

Result<server::RetrievalStack*> Session::retrieval() {
  if (retrieval_) return retrieval_.get();
  ENGRAM_ASSIGN_OR_RETURN(Memory* memory, this->memory());
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, this->config());
  ENGRAM_ASSIGN_OR_RETURN(std::unique_ptr<server::RetrievalStack> stack,
                          server::OpenRetrieval(*config, memory->storage(), memory->clock()));
  ENGRAM_RETURN_IF_ERROR(stack->OpenIndex());
  retrieval_ = std::move(stack);
  return retrieval_.get();
}

namespace {

Status RunVersion(Session& session) {
  nlohmann::json j = {{"engram", ENGRAM_VERSION}, {"schema", sqlite::kSchemaVersion}, {"sqlite", sqlite3_libversion()}};
  if (session.json()) {
    PrintJson(j);
  } else {
    std::cout << "engram " << ENGRAM_VERSION << " (store schema " << sqlite::kSchemaVersion << ", SQLite "
              << sqlite3_libversion() << ")\n";
  }
  return OkStatus();
}

Status RunConfigShow(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  std::cout << (session.json() ? FormatConfigJson(*config) : FormatConfigTable(*config));
  return OkStatus();
}

// `make run` until the MCP server lands: shows the store, records a sample episode the
// first time so there is something to look at, and says what to type next.
Status RunDemo(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(Memory * memory, session.memory());
  ENGRAM_ASSIGN_OR_RETURN(StoreStats stats, memory->storage().Stats());
  std::cout << "engram " << ENGRAM_VERSION << " — episodic memory for coding agents\n"
            << "Store: " << memory->storage().Location() << "\n\n";
  if (stats.episodes == 0) {
    std::cout << "The store is empty; recording a sample episode through the same API agents use...\n\n";
    NewEpisode ne;
    ne.task_description = "Fix the flaky async test in the web-api crate";
    ne.task_type = TaskType::kDebugging;
    ne.context.domain = "web-api";
    ne.context.language = "rust";
    ne.context.framework = "tokio";
    ne.tags = {"demo"};
    ENGRAM_ASSIGN_OR_RETURN(std::string id, memory->CreateEpisode(ne));
    auto step = [&](std::string tool, std::string action, StepStatus status, std::string output) -> Status {
      NewStep s;
      s.tool = std::move(tool);
      s.action = std::move(action);
      s.result = StepResult{status, std::move(output), std::nullopt};
      s.latency_ms = 1200;
      return memory->AddStep(id, std::move(s)).status();
    };
    ENGRAM_RETURN_IF_ERROR(step("bash", "cargo test -p web-api", StepStatus::kError,
                                "test handlers::tests::timeout_is_respected ... FAILED"));
    ENGRAM_RETURN_IF_ERROR(step("read_file", "read src/handlers.rs", StepStatus::kSuccess, "312 lines"));
    ENGRAM_RETURN_IF_ERROR(step("edit_file", "use tokio::time::pause() in the test", StepStatus::kSuccess, "1 hunk"));
    ENGRAM_RETURN_IF_ERROR(step("bash", "cargo test -p web-api", StepStatus::kSuccess, "test result: ok. 48 passed"));
    Outcome outcome;
    outcome.verdict = "test is deterministic with paused time";
    outcome.artifacts = {"src/handlers.rs"};
    outcome.verification = Verification{48, 0, true, std::nullopt, std::nullopt};
    ENGRAM_ASSIGN_OR_RETURN(Episode done, memory->CompleteEpisode(id, outcome));
    PrintEpisodeDetail(std::cout, done);
    std::cout << "\n";
  }
  ENGRAM_ASSIGN_OR_RETURN(stats, memory->storage().Stats());
  std::cout << stats.episodes << " episodes (" << stats.completed_episodes << " completed), " << stats.steps
            << " steps.\n\n"
            << "Try:\n"
            << "  build/engram episode list\n"
            << "  id=$(build/engram episode create --task \"Add retry to the HTTP client\" --domain web-api)\n"
            << "  build/engram episode log-step $id --tool bash --action \"cargo test\" --status success\n"
            << "  build/engram episode complete $id --outcome success --tests-passed 12\n"
            << "  build/engram episode get $id\n"
            << "  build/engram config show\n";
  return OkStatus();
}

}  // namespace

int RunCli(int argc, char** argv) {
  GlobalOptions options;
  CLI::App app{"engram: self-learning episodic memory for AI coding agents"};
  app.name("engram");
  app.require_subcommand(1);
  app.fallthrough();  // global options may come after the subcommand too
  app.add_option("--db", options.db, "Database file (storage.db; env ENGRAM_DB)");
  app.add_option("--store", options.store,
                 "PostgreSQL URL postgres://user@host/db, or Turso URL libsql://db-org.turso.io (token from "
                 "ENGRAM_TURSO_TOKEN or storage.turso_token_file), instead of the SQLite file (storage.url; env "
                 "ENGRAM_STORE)");
  app.add_option("--config", options.config_file, "Config file (TOML; env ENGRAM_CONFIG)");
  app.add_option("--durability", options.durability, "full (fsync every commit) or normal");
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error or off");
  app.add_option("--log-format", options.log_format, "auto, text or json");
  app.add_option("--set", options.sets, "Override any config key: --set storage.busy_timeout_ms=2000");
  app.add_flag("--json", options.json, "Machine-readable JSON output");

  Command selected;
  auto* version = app.add_subcommand("version", "Print the version");
  version->callback([&] { selected = RunVersion; });
  auto* config = app.add_subcommand("config", "Show the configuration");
  config->require_subcommand(1);
  config->add_subcommand("show", "Print each effective setting and where it came from")->callback([&] {
    selected = RunConfigShow;
  });
  app.add_subcommand("demo", "Show the store and record a sample episode if it is empty")->callback([&] {
    selected = RunDemo;
  });
  server::ServeOptions serve_options;
  serve_options.version = ENGRAM_VERSION;
  auto* serve = app.add_subcommand("serve", "Serve MCP: stdio by default, Streamable HTTP with --http HOST:PORT");
  serve->add_option("--http", serve_options.http, "Listen for Streamable HTTP at HOST:PORT (server.http)");
  serve->add_flag("--conformance-fixtures", serve_options.conformance_fixtures,
                  "Add the MCP conformance suite's fixture tools (tests only)");
  serve->callback([&] {
    selected = [&](Session& session) -> Status {
      ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
      if (!serve_options.http && !config->server_http.empty()) serve_options.http = config->server_http;
      serve_options.config_inputs = session.config_inputs();
      return server::Serve(*config, serve_options);
    };
  });
  AddEpisodeCommands(app, &selected);
  AddKeysCommands(app, &selected);
  AddStorageCommands(app, &selected);
  AddQueryCommands(app, &selected);
  AddPatternCommands(app, &selected);
  AddDoctorCommand(app, &selected);
  AddBackupCommands(app, &selected);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {  // CLI11 reports usage errors by throwing
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!selected) return 2;
  Session session(options);
  Status status = selected(session);
  if (!status.ok()) {
    std::cerr << "engram: " << OneLine(status.message().empty() ? status.ToString() : status.message()) << "\n";
    if (options.json) {
      PrintJson({{"error", {{"code", std::string(StatusCodeName(status.code()))}, {"message", status.message()}}}});
    }
    return 1;
  }
  return 0;
}

}  // namespace engram::cli
