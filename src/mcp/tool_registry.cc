#include "mcp/tool_registry.h"

#include <algorithm>

namespace engram::mcp {

bool Principal::MayAccessDomain(std::string_view domain) const {
  if (allowed_domains.empty()) return true;
  return std::find(allowed_domains.begin(), allowed_domains.end(), domain) != allowed_domains.end();
}

Status ToolRegistry::Add(ToolDefinition tool) {
  if (tool.name.empty()) return InvalidArgumentError("a tool needs a name");
  if (!tool.handler) return InvalidArgumentError("tool " + tool.name + " has no handler");
  if (!tool.input_schema.is_object() || tool.input_schema.value("type", "") != "object") {
    return InvalidArgumentError("tool " + tool.name + ": inputSchema must be a JSON Schema of type object");
  }
  if (Find(tool.name) != nullptr) return AlreadyExistsError("tool " + tool.name + " is already registered");
  tools_.push_back(std::make_unique<ToolDefinition>(std::move(tool)));
  return OkStatus();
}

const ToolDefinition* ToolRegistry::Find(std::string_view name) const {
  for (const auto& t : tools_) {
    if (t->name == name) return t.get();
  }
  return nullptr;
}

Json ToolRegistry::Describe(const ToolDefinition& tool) {
  Json j = {{"name", tool.name}, {"description", tool.description}, {"inputSchema", tool.input_schema}};
  if (!tool.title.empty()) j["title"] = tool.title;
  if (tool.output_schema) j["outputSchema"] = *tool.output_schema;
  Json annotations = {{"readOnlyHint", tool.annotations.read_only},
                      {"destructiveHint", tool.annotations.destructive},
                      {"idempotentHint", tool.annotations.idempotent},
                      {"openWorldHint", tool.annotations.open_world}};
  if (!tool.title.empty()) annotations["title"] = tool.title;
  j["annotations"] = std::move(annotations);
  return j;
}

}  // namespace engram::mcp
