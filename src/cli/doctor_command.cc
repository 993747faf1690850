// `engram doctor`: checks the installation (cli/doctor_checks.h) and says what is wrong and
// how to fix it. Exit code 1 when a check FAILs; warnings and notes keep it 0.
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/doctor_checks.h"
#include "cli/output.h"

namespace engram::cli {
namespace {

Status RunDoctor(Session& session) {
  std::vector<DoctorCheck> checks = RunDoctorChecks(session.config(), DoctorEnvironmentFromProcess());
  if (session.json()) {
    PrintJson(DoctorJson(checks));
  } else {
    std::cout << FormatDoctorText(checks);
  }
  if (!DoctorHealthy(checks)) return FailedPreconditionError("doctor found problems");
  return OkStatus();
}

}  // namespace

void AddDoctorCommand(CLI::App& app, Command* selected) {
  app.add_subcommand("doctor",
                     "Check the config, store, cache, embeddings, disk, sandbox layers and MCP clients; say how to "
                     "fix problems")
      ->callback([selected] { *selected = RunDoctor; });
}

}  // namespace engram::cli
