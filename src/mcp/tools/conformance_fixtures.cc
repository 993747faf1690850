// Test-only fixtures for the official MCP conformance suite (@modelcontextprotocol/
// conformance, server scenarios): the tools, resources and prompts its scenarios call by
// fixed names, with the content each scenario checks. Served only by `engram serve
// --conformance-fixtures`; they touch no memory.
//
// Scenario → fixture:
//   tools-call-simple-text        test_simple_text
//   tools-call-image              test_image_content
//   tools-call-audio              test_audio_content
//   tools-call-embedded-resource  test_embedded_resource
//   tools-call-mixed-content      test_multiple_content_types
//   tools-call-with-logging       test_tool_with_logging (3 info logs, ~50 ms apart)
//   tools-call-with-progress      test_tool_with_progress (0, 50, 100 of 100)
//   tools-call-error              test_error_handling (isError: true)
//   tools-call-sampling           test_sampling (sampling/createMessage)
//   tools-call-elicitation        test_elicitation (elicitation/create)
//   elicitation-sep1034-defaults  test_elicitation_sep1034_defaults
//   elicitation-sep1330-enums     test_elicitation_sep1330_enums
//   json-schema-2020-12           json_schema_2020_12_tool ($schema, $defs, additionalProperties)
//   server-sse-polling            test_reconnection
//   resources-*                   test://static-text, test://static-binary, test://watched-resource,
//                                 template test://template/{id}/data
//   prompts-*, completion-complete test_simple_prompt, test_prompt_with_arguments (arg1 completes),
//                                 test_prompt_with_embedded_resource, test_prompt_with_image
#include "mcp/tools/conformance_fixtures.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace engram::mcp {
namespace {

// A 1×1 red PNG and a WAV of eight silent 16-bit samples at 8 kHz, made for these fixtures.
constexpr const char* kPngBase64 =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4z8AAAAMBAQD3A0FDAAAAAElFTkSuQmCC";
constexpr const char* kWavBase64 = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA";

constexpr auto kClientTimeout = std::chrono::seconds(60);
constexpr const char* kLogger = "engram-conformance";
constexpr std::string_view kTemplatePrefix = "test://template/";
constexpr std::string_view kTemplateSuffix = "/data";

Json NoArguments() { return {{"type", "object"}, {"properties", Json::object()}}; }

Json Text(std::string text) { return {{"type", "text"}, {"text", std::move(text)}}; }

ToolResult Content(Json blocks) {
  ToolResult r;
  r.structured = Json::object();  // empty: the session sends no structuredContent
  r.content = std::move(blocks);
  return r;
}

// Sleeps `ms`, waking early if the call is cancelled.
void Pause(CallContext& ctx, int ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!ctx.cancelled() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

ToolDefinition Fixture(std::string name, std::string description, ToolHandler handler, Json schema = NoArguments()) {
  ToolDefinition t;
  t.name = std::move(name);
  t.title = t.name;
  t.description = std::move(description);
  t.input_schema = std::move(schema);
  t.annotations.read_only = true;
  t.annotations.idempotent = true;
  t.tier = ToolTier::kBeginner;
  t.handler = std::move(handler);
  return t;
}

// The text of an elicitation answer: "action=accept, content={...}".
std::string ElicitationSummary(const Json& result) {
  return "action=" + result.value("action", std::string("unknown")) +
         ", content=" + Dump(result.contains("content") ? result["content"] : Json::object());
}

Result<ToolResult> Elicit(CallContext& ctx, Json params, const std::string& label) {
  params["mode"] = "form";
  ENGRAM_ASSIGN_OR_RETURN(Json result, ctx.RequestClient("elicitation/create", params, kClientTimeout));
  return Content(Json::array({Text(label + ElicitationSummary(result))}));
}

std::vector<ToolDefinition> FixtureTools() {
  std::vector<ToolDefinition> tools;
  tools.push_back(Fixture("test_simple_text", "Conformance fixture: returns one text block.",
                          [](const Json&, CallContext&) -> Result<ToolResult> {
                            return Content(Json::array({Text("This is a simple text response for testing.")}));
                          }));
  tools.push_back(Fixture("test_image_content", "Conformance fixture: returns a 1x1 PNG image block.",
                          [](const Json&, CallContext&) -> Result<ToolResult> {
                            return Content(Json::array(
                                {{{"type", "image"}, {"data", kPngBase64}, {"mimeType", "image/png"}}}));
                          }));
  tools.push_back(Fixture("test_audio_content", "Conformance fixture: returns a short WAV audio block.",
                          [](const Json&, CallContext&) -> Result<ToolResult> {
                            return Content(Json::array(
                                {{{"type", "audio"}, {"data", kWavBase64}, {"mimeType", "audio/wav"}}}));
                          }));
  tools.push_back(Fixture("test_embedded_resource", "Conformance fixture: returns an embedded text resource.",
                          [](const Json&, CallContext&) -> Result<ToolResult> {
                            return Content(Json::array({{{"type", "resource"},
                                                         {"resource",
                                                          {{"uri", "test://embedded-resource"},
                                                           {"mimeType", "text/plain"},
                                                           {"text", "This is an embedded resource content."}}}}}));
                          }));
  tools.push_back(Fixture(
      "test_multiple_content_types", "Conformance fixture: returns text, image and embedded resource blocks.",
      [](const Json&, CallContext&) -> Result<ToolResult> {
        return Content(Json::array(
            {Text("Multiple content types test:"),
             {{"type", "image"}, {"data", kPngBase64}, {"mimeType", "image/png"}},
             {{"type", "resource"},
              {"resource",
               {{"uri", "test://mixed-content-resource"},
                {"mimeType", "application/json"},
                {"text", Dump(Json{{"test", "data"}, {"value", 123}})}}}}}));
      }));
  tools.push_back(Fixture("test_tool_with_logging",
                          "Conformance fixture: sends three info log messages about 50 ms apart while it runs.",
                          [](const Json&, CallContext& ctx) -> Result<ToolResult> {
                            ctx.Log("info", kLogger, "Tool execution started");
                            Pause(ctx, 50);
                            ctx.Log("info", kLogger, "Tool processing data");
                            Pause(ctx, 50);
                            ctx.Log("info", kLogger, "Tool execution completed");
                            return Content(Json::array({Text("Tool with logging executed successfully")}));
                          }));
  tools.push_back(Fixture("test_tool_with_progress",
                          "Conformance fixture: reports progress 0, 50 and 100 of 100 about 50 ms apart.",
                          [](const Json&, CallContext& ctx) -> Result<ToolResult> {
                            for (int step : {0, 50, 100}) {
                              if (step != 0) Pause(ctx, 50);
                              ctx.Progress(step, 100.0,
                                           "Completed step " + std::to_string(step) + " of 100");
                            }
                            // The TypeScript SDK client dispatches notifications a microtask
                            // late but responses at once, and forgets the progress handler with
                            // the response: a last progress read together with the result is lost.
                            Pause(ctx, 20);
                            return Content(Json::array({Text("Tool with progress executed successfully")}));
                          }));
  tools.push_back(Fixture("test_error_handling", "Conformance fixture: always fails (isError: true).",
                          [](const Json&, CallContext&) -> Result<ToolResult> {
                            return InternalError("This tool intentionally returns an error for testing");
                          }));
  tools.push_back(Fixture(
      "test_reconnection",
      "Conformance fixture (SEP-1699): runs for a moment so the client can poll and reconnect, then answers.",
      [](const Json&, CallContext& ctx) -> Result<ToolResult> {
        Pause(ctx, 100);
        return Content(Json::array({Text(
            "Reconnection test completed successfully. If you received this, the client properly reconnected "
            "after stream closure.")}));
      }));
  tools.push_back(Fixture(
      "test_sampling", "Conformance fixture: asks the client's LLM (sampling/createMessage) to answer a prompt.",
      [](const Json& args, CallContext& ctx) -> Result<ToolResult> {
        Json params = {
            {"messages",
             Json::array({{{"role", "user"}, {"content", Text(args.value("prompt", std::string()))}}})},
            {"maxTokens", 100}};
        ENGRAM_ASSIGN_OR_RETURN(Json result, ctx.RequestClient("sampling/createMessage", params, kClientTimeout));
        std::string answer = "No response";
        if (result.contains("content") && result["content"].is_object() && result["content"].contains("text") &&
            result["content"]["text"].is_string()) {
          answer = result["content"]["text"];
        }
        return Content(Json::array({Text("LLM response: " + answer)}));
      },
      Json{{"type", "object"},
           {"properties", {{"prompt", {{"type", "string"}, {"description", "The prompt to send to the LLM"}}}}},
           {"required", {"prompt"}}}));
  tools.push_back(Fixture(
      "test_elicitation", "Conformance fixture: asks the user for input (elicitation/create).",
      [](const Json& args, CallContext& ctx) -> Result<ToolResult> {
        Json params = {
            {"message", args.value("message", std::string())},
            {"requestedSchema",
             {{"type", "object"},
              {"properties",
               {{"username", {{"type", "string"}, {"description", "User's response"}}},
                {"email", {{"type", "string"}, {"description", "User's email address"}}}}},
              {"required", {"username", "email"}}}}};
        return Elicit(ctx, std::move(params), "User response: ");
      },
      Json{{"type", "object"},
           {"properties", {{"message", {{"type", "string"}, {"description", "The message to show the user"}}}}},
           {"required", {"message"}}}));
  tools.push_back(Fixture(
      "test_elicitation_sep1034_defaults",
      "Conformance fixture (SEP-1034): elicitation with a default for every primitive type.",
      [](const Json&, CallContext& ctx) -> Result<ToolResult> {
        Json params = {
            {"message", "Please review and update the form fields with defaults"},
            {"requestedSchema",
             {{"type", "object"},
              {"properties",
               {{"name", {{"type", "string"}, {"description", "User name"}, {"default", "John Doe"}}},
                {"age", {{"type", "integer"}, {"description", "User age"}, {"default", 30}}},
                {"score", {{"type", "number"}, {"description", "User score"}, {"default", 95.5}}},
                {"status",
                 {{"type", "string"},
                  {"description", "User status"},
                  {"enum", {"active", "inactive", "pending"}},
                  {"default", "active"}}},
                {"verified", {{"type", "boolean"}, {"description", "Verification status"}, {"default", true}}}}},
              {"required", Json::array()}}}};
        return Elicit(ctx, std::move(params), "Elicitation completed: ");
      }));
  tools.push_back(Fixture(
      "test_elicitation_sep1330_enums",
      "Conformance fixture (SEP-1330): elicitation with the five enum schema variants.",
      [](const Json&, CallContext& ctx) -> Result<ToolResult> {
        auto titled = [](const char* prefix, const std::vector<const char*>& titles) {
          Json options = Json::array();
          for (size_t i = 0; i < titles.size(); ++i) {
            options.push_back({{"const", std::string(prefix) + std::to_string(i + 1)}, {"title", titles[i]}});
          }
          return options;
        };
        Json params = {
            {"message", "Please select options from the enum fields"},
            {"requestedSchema",
             {{"type", "object"},
              {"properties",
               {{"untitledSingle",
                 {{"type", "string"},
                  {"description", "Select one option"},
                  {"enum", {"option1", "option2", "option3"}}}},
                {"titledSingle",
                 {{"type", "string"},
                  {"description", "Select one option with titles"},
                  {"oneOf", titled("value", {"First Option", "Second Option", "Third Option"})}}},
                {"legacyEnum",
                 {{"type", "string"},
                  {"description", "Select one option (legacy)"},
                  {"enum", {"opt1", "opt2", "opt3"}},
                  {"enumNames", {"Option One", "Option Two", "Option Three"}}}},
                {"untitledMulti",
                 {{"type", "array"},
                  {"description", "Select multiple options"},
                  {"minItems", 1},
                  {"maxItems", 3},
                  {"items", {{"type", "string"}, {"enum", {"option1", "option2", "option3"}}}}}},
                {"titledMulti",
                 {{"type", "array"},
                  {"description", "Select multiple options with titles"},
                  {"minItems", 1},
                  {"maxItems", 3},
                  {"items", {{"anyOf", titled("value", {"First Choice", "Second Choice", "Third Choice"})}}}}}}},
              {"required", Json::array()}}}};
        return Elicit(ctx, std::move(params), "Elicitation completed: ");
      }));
  tools.push_back(Fixture(
      "json_schema_2020_12_tool",
      "Conformance fixture (SEP-1613): an input schema using JSON Schema 2020-12 keywords.",
      [](const Json& args, CallContext&) -> Result<ToolResult> {
        return Content(Json::array({Text("JSON Schema 2020-12 tool called with: " + Dump(args))}));
      },
      Json{{"$schema", "https://json-schema.org/draft/2020-12/schema"},
           {"type", "object"},
           {"$defs",
            {{"address",
              {{"type", "object"},
               {"properties", {{"street", {{"type", "string"}}}, {"city", {{"type", "string"}}}}}}}}},
           {"properties", {{"name", {{"type", "string"}}}, {"address", {{"$ref", "#/$defs/address"}}}}},
           {"additionalProperties", false}}));
  return tools;
}

// test://static-text, test://static-binary, test://watched-resource and the template
// test://template/{id}/data. Stateless, so thread-safe.
class FixtureResources final : public ResourceProvider {
 public:
  Result<ResourcePage> List(const std::string& cursor, size_t, const Principal&) override {
    if (!cursor.empty()) return InvalidArgumentError("cursor: not a cursor this server issued");
    ResourcePage page;
    page.resources = {
        {.uri = "test://static-text",
         .name = "static-text",
         .title = "Static Text Resource",
         .description = "Conformance fixture: a static text resource",
         .mime_type = "text/plain"},
        {.uri = "test://static-binary",
         .name = "static-binary",
         .title = "Static Binary Resource",
         .description = "Conformance fixture: a static binary resource (a PNG image)",
         .mime_type = "image/png"},
        {.uri = "test://watched-resource",
         .name = "watched-resource",
         .title = "Watched Resource",
         .description = "Conformance fixture: a resource clients may subscribe to",
         .mime_type = "text/plain"},
    };
    return page;
  }

  std::vector<Json> Templates() const override {
    return {Json{{"uriTemplate", "test://template/{id}/data"},
                 {"name", "template"},
                 {"title", "Resource Template"},
                 {"description", "Conformance fixture: a resource template with parameter substitution"},
                 {"mimeType", "application/json"}}};
  }

  bool Owns(std::string_view uri) const override { return uri.starts_with("test://"); }

  Result<std::vector<ResourceContents>> Read(std::string_view uri, const Principal&) override {
    ResourceContents c;
    c.uri = std::string(uri);
    if (uri == "test://static-text") {
      c.mime_type = "text/plain";
      c.text = "This is the content of the static text resource.";
    } else if (uri == "test://static-binary") {
      c.mime_type = "image/png";
      c.blob_base64 = kPngBase64;
    } else if (uri == "test://watched-resource") {
      c.mime_type = "text/plain";
      c.text = "Watched resource content";
    } else if (uri.starts_with(kTemplatePrefix) && uri.ends_with(kTemplateSuffix) &&
               uri.size() > kTemplatePrefix.size() + kTemplateSuffix.size()) {
      std::string id(uri.substr(kTemplatePrefix.size(), uri.size() - kTemplatePrefix.size() - kTemplateSuffix.size()));
      if (id.find('/') != std::string::npos) return NotFoundError("no fixture resource at " + std::string(uri));
      c.mime_type = "application/json";
      c.text = Dump(Json{{"id", id}, {"templateTest", true}, {"data", "Data for ID: " + id}});
    } else {
      return NotFoundError("no fixture resource at " + std::string(uri));
    }
    return std::vector<ResourceContents>{std::move(c)};
  }
};

std::string Arg(const Json& args, const char* name) {
  auto it = args.find(name);
  return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Json UserMessage(Json content) { return {{"role", "user"}, {"content", std::move(content)}}; }

std::vector<PromptDefinition> FixturePrompts() {
  std::vector<PromptDefinition> prompts;
  prompts.push_back(PromptDefinition{
      .name = "test_simple_prompt",
      .title = "Simple Test Prompt",
      .description = "Conformance fixture: a prompt without arguments",
      .arguments = {},
      .get = [](const Json&, const Principal&) -> Result<Json> {
        return Json{{"messages", Json::array({UserMessage(Text("This is a simple prompt for testing."))})}};
      },
      .complete = nullptr,
  });
  prompts.push_back(PromptDefinition{
      .name = "test_prompt_with_arguments",
      .title = "Prompt With Arguments",
      .description = "Conformance fixture: a prompt with two required arguments",
      .arguments = {{.name = "arg1", .description = "First test argument", .required = true},
                    {.name = "arg2", .description = "Second test argument", .required = true}},
      .get = [](const Json& args, const Principal&) -> Result<Json> {
        return Json{{"messages", Json::array({UserMessage(Text("Prompt with arguments: arg1='" + Arg(args, "arg1") +
                                                               "', arg2='" + Arg(args, "arg2") + "'"))})}};
      },
      .complete = [](const std::string& argument, const std::string& prefix) -> std::vector<std::string> {
        static const std::vector<std::string> kValues = {"paris", "park", "party", "test", "testValue1",
                                                         "testValue2"};
        std::vector<std::string> out;
        if (argument != "arg1" && argument != "arg2") return out;
        for (const std::string& v : kValues) {
          if (v.starts_with(prefix)) out.push_back(v);
        }
        return out;
      },
  });
  prompts.push_back(PromptDefinition{
      .name = "test_prompt_with_embedded_resource",
      .title = "Prompt With Embedded Resource",
      .description = "Conformance fixture: a prompt that embeds a resource",
      .arguments = {{.name = "resourceUri", .description = "URI of the resource to embed", .required = true}},
      .get = [](const Json& args, const Principal&) -> Result<Json> {
        return Json{{"messages",
                     Json::array({UserMessage({{"type", "resource"},
                                               {"resource",
                                                {{"uri", Arg(args, "resourceUri")},
                                                 {"mimeType", "text/plain"},
                                                 {"text", "Embedded resource content for testing."}}}}),
                                  UserMessage(Text("Please process the embedded resource above."))})}};
      },
      .complete = nullptr,
  });
  prompts.push_back(PromptDefinition{
      .name = "test_prompt_with_image",
      .title = "Prompt With Image",
      .description = "Conformance fixture: a prompt that includes an image",
      .arguments = {},
      .get = [](const Json&, const Principal&) -> Result<Json> {
        return Json{
            {"messages",
             Json::array({UserMessage({{"type", "image"}, {"data", kPngBase64}, {"mimeType", "image/png"}}),
                          UserMessage(Text("Please analyze the image above."))})}};
      },
      .complete = nullptr,
  });
  return prompts;
}

}  // namespace

Status RegisterConformanceFixtures(McpServer& server) {
  for (ToolDefinition& tool : FixtureTools()) ENGRAM_RETURN_IF_ERROR(server.tools().Add(std::move(tool)));
  for (PromptDefinition& prompt : FixturePrompts()) ENGRAM_RETURN_IF_ERROR(server.AddPrompt(std::move(prompt)));
  server.AddResourceProvider(std::make_unique<FixtureResources>());
  return OkStatus();
}

}  // namespace engram::mcp
