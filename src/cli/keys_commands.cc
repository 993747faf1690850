// `engram keys create|list|revoke`: API keys for `engram serve --http`. The keys file is
// auth.keys_file; a running server notices changes to it within a second.
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/output.h"
#include "common/strings.h"
#include "common/time_format.h"
#include "mcp/auth.h"

namespace engram::cli {
namespace {

struct CreateKeyArgs {
  std::string name;
  std::string domains;  // comma-separated; empty: every domain
};

struct RevokeKeyArgs {
  std::string key_id;
};

Result<mcp::ApiKeyStore> OpenKeys(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(const Config* config, session.config());
  if (config->keys_file.empty()) {
    return FailedPreconditionError(
        "no API keys file: HOME is not set, so auth.keys_file has no default; set ENGRAM_AUTH_KEYS_FILE or "
        "--set auth.keys_file=PATH");
  }
  return mcp::ApiKeyStore::Load(config->keys_file);
}

std::string DomainsText(const std::vector<std::string>& domains) {
  if (domains.empty()) return "all";
  std::string out;
  for (const std::string& d : domains) out += (out.empty() ? "" : ",") + d;
  return out;
}

Status RunCreate(Session& session, const CreateKeyArgs& a) {
  ENGRAM_ASSIGN_OR_RETURN(mcp::ApiKeyStore keys, OpenKeys(session));
  ENGRAM_ASSIGN_OR_RETURN(mcp::CreatedKey created, keys.Create(a.name, SplitAndTrim(a.domains, ',')));
  if (session.json()) {
    PrintJson({{"key_id", created.info.id},
               {"key", created.key},
               {"name", created.info.name},
               {"domains", created.info.domains},
               {"created_at", FormatTimestamp(created.info.created_at)}});
    return OkStatus();
  }
  // The key alone on stdout, so `KEY=$(engram keys create)` works; the rest is for people.
  std::cout << created.key << "\n";
  std::cerr << "Created API key " << created.info.id
            << (created.info.name.empty() ? "" : " (" + created.info.name + ")")
            << " for domains: " << DomainsText(created.info.domains) << ".\n"
            << "Store it now: it is shown only once (" << keys.path() << " keeps only a hash).\n"
            << "Clients send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`.\n";
  return OkStatus();
}

Status RunList(Session& session) {
  ENGRAM_ASSIGN_OR_RETURN(mcp::ApiKeyStore keys, OpenKeys(session));
  std::vector<mcp::KeyInfo> infos = keys.List();
  if (session.json()) {
    for (const mcp::KeyInfo& k : infos) {
      PrintJson({{"key_id", k.id},
                 {"name", k.name},
                 {"domains", k.domains},
                 {"created_at", FormatTimestamp(k.created_at)},
                 {"revoked", k.revoked}});
    }
    return OkStatus();
  }
  if (infos.empty()) {
    std::cout << "No API keys. Create one with: engram keys create --name NAME\n";
    return OkStatus();
  }
  Table table({"ID", "NAME", "DOMAINS", "CREATED", "STATUS"});
  for (const mcp::KeyInfo& k : infos) {
    table.AddRow({k.id, k.name.empty() ? "-" : Ellipsize(OneLine(k.name), 40), DomainsText(k.domains),
                  FormatTimestampShort(k.created_at), k.revoked ? "revoked" : "active"});
  }
  table.Print(std::cout);
  return OkStatus();
}

Status RunRevoke(Session& session, const RevokeKeyArgs& a) {
  ENGRAM_ASSIGN_OR_RETURN(mcp::ApiKeyStore keys, OpenKeys(session));
  // Accept the whole key too, in case that is what the user has at hand.
  std::string id = a.key_id;
  if (id.starts_with("engram_") && id.size() >= 19) id = id.substr(7, 12);
  ENGRAM_RETURN_IF_ERROR(keys.Revoke(id));
  if (session.json()) {
    PrintJson({{"key_id", id}, {"revoked", true}});
  } else {
    std::cout << "revoked " << id << "\n";
  }
  return OkStatus();
}

}  // namespace

void AddKeysCommands(CLI::App& app, Command* selected) {
  auto* keys = app.add_subcommand("keys", "Manage API keys for the HTTP transport (engram serve --http)");
  keys->require_subcommand(1);

  auto create = std::make_shared<CreateKeyArgs>();
  auto* c = keys->add_subcommand("create", "Create an API key and print it (shown only this once)");
  c->add_option("--name,-n", create->name, "A label, e.g. the client or person it is for");
  c->add_option("--domains,-d", create->domains,
                "Comma-separated domains the key may read and write (default: all)");
  c->callback([=] { *selected = [create](Session& s) { return RunCreate(s, *create); }; });

  auto* l = keys->add_subcommand("list", "List API keys (never the keys themselves)");
  l->callback([=] { *selected = [](Session& s) { return RunList(s); }; });

  auto revoke = std::make_shared<RevokeKeyArgs>();
  auto* r = keys->add_subcommand("revoke", "Revoke an API key; a running server stops accepting it within a second");
  r->add_option("key_id", revoke->key_id, "The key's ID, as `engram keys list` shows it")->required();
  r->callback([=] { *selected = [revoke](Session& s) { return RunRevoke(s, *revoke); }; });
}

}  // namespace engram::cli
