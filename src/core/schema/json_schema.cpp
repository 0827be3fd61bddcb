#include "core/schema/json_schema.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include <re2/re2.h>

#include "core/common/json_limits.hpp"
#include "core/common/spec_reader.hpp"
#include "core/common/user_error.hpp"
#include "core/schema/ecma_regex.hpp"
#include "core/schema/formats.hpp"
#include "core/schema/metaschemas.hpp"
#include "core/schema/uri.hpp"

namespace orch::schema {

// ---------------------------------------------------------------------------------------
// The compiled form: one Node per (sub)schema, every keyword already checked and parsed.

enum TypeBit : unsigned {
  kNull = 1, kBoolean = 2, kObject = 4, kArray = 8, kNumber = 16, kString = 32, kInteger = 64
};

struct Pattern {
  std::string source;
  std::shared_ptr<const re2::RE2> regex;  // shared: Node is copied into optional/vector
  // RE2's program size, in instructions (pattern_program_size(); at most
  // kMaxPatternProgramSize): a search's cost per byte in the worst case (see search()).
  std::uint64_t program_size = 0;
};

struct Schema::Node {
  std::optional<bool> constant;  // a boolean schema: true accepts all, false nothing
  unsigned types = 0;            // 0: any type
  std::optional<json> const_value;
  std::optional<std::vector<json>> enum_values;
  // What comparing a value with each candidate costs, in evaluations (its size: see
  // json_cost()), for the work budget; const_cost likewise.
  std::vector<std::uint64_t> enum_costs;
  std::uint64_t const_cost = 0;
  // An enum of strings only (the usual kind, sometimes hundreds long) is looked up in a
  // hash set: the same answer as comparing with each (a string equals only a string),
  // without a cost of enum size x instance size.
  std::optional<std::unordered_set<std::string>> enum_strings;
  std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum, multiple_of;
  std::optional<std::size_t> min_length, max_length, min_items, max_items, min_contains,
      max_contains, min_properties, max_properties;
  std::optional<Pattern> pattern;
  std::string format;  // asserted (formats.hpp); empty when "format" is an annotation
  std::vector<const Node*> prefix_items;
  const Node* items = nullptr;
  const Node* contains = nullptr;
  bool unique_items = false;
  std::map<std::string, const Node*> properties;
  std::vector<std::pair<Pattern, const Node*>> pattern_properties;
  const Node* additional_properties = nullptr;
  const Node* property_names = nullptr;
  std::vector<std::string> required;
  std::map<std::string, std::vector<std::string>> dependent_required;
  std::map<std::string, const Node*> dependent_schemas;
  std::vector<const Node*> all_of, any_of, one_of;
  const Node* not_schema = nullptr;
  const Node* if_schema = nullptr;
  const Node* then_schema = nullptr;
  const Node* else_schema = nullptr;
  const Node* ref = nullptr;
  // $dynamicRef: the schema it names statically, and when that is a $dynamicAnchor, the
  // anchor's name and every schema of the compiled documents that has a $dynamicAnchor of
  // that name, by resource: validation takes the one of the outermost resource in the
  // dynamic scope (see Validator::dynamic_target()).
  const Node* dynamic_ref = nullptr;
  const std::unordered_map<std::uint32_t, const Node*>* dynamic_targets = nullptr;
  // The $ref and $dynamicRef as written, to name them in messages.
  std::string ref_name, dynamic_ref_name;
  const Node* unevaluated_items = nullptr;
  const Node* unevaluated_properties = nullptr;
  // The schema resource (the innermost $id, or the document) this node belongs to.
  std::uint32_t resource = 0;
  // Where in the schema document, for messages: the parent's location followed by
  // `token` ("/properties/a"), or `token` alone (a $ref target: its JSON Pointer). Kept
  // as pieces because whole paths, one per node, would take memory quadratic in depth.
  const Node* parent = nullptr;
  std::string token;
};

namespace {

using Node = Schema::Node;

std::string location_of(const Node* node) {
  std::vector<const std::string*> tokens;
  for (; node; node = node->parent) tokens.push_back(&node->token);
  std::string out;
  for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) out += **it;
  return out;
}

bool is_integral(const json& value) {
  if (value.is_number_integer()) return true;
  if (!value.is_number_float()) return false;
  double d = value.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

// Writes `value` as compact JSON (the text dump() gives), stopping soon after `out` holds
// more than `limit` bytes. Iterative, unlike dump(), so that a value of any depth is safe,
// and bounded, so that showing a 10 MB value in a message costs nothing. With
// `canonical`, numbers equal in value print alike (1 and 1.0): the key for uniqueItems
// (nlohmann keeps object keys sorted, so equal objects print alike too).
void write_json(const json& value, std::string& out, bool canonical,
                std::size_t limit = std::numeric_limits<std::size_t>::max()) {
  auto scalar = [&](const json& v) {
    if (canonical && v.is_number() && is_integral(v) && std::fabs(v.get<double>()) < 9.007199254740992e15)
      out += std::to_string(static_cast<long long>(v.get<double>()));
    else
      out += v.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  if (!value.is_array() && !value.is_object()) return scalar(value);
  struct Frame {
    const json* node;
    json::const_iterator it;
  };
  std::vector<Frame> stack;
  out += value.is_array() ? '[' : '{';
  stack.push_back({&value, value.cbegin()});
  while (!stack.empty() && out.size() <= limit) {
    Frame& frame = stack.back();
    if (frame.it == frame.node->cend()) {
      out += frame.node->is_array() ? ']' : '}';
      stack.pop_back();
      continue;
    }
    if (frame.it != frame.node->cbegin()) out += ',';
    if (frame.node->is_object()) {
      out += json(frame.it.key()).dump(-1, ' ', false, json::error_handler_t::replace);
      out += ':';
    }
    const json& child = *frame.it;
    ++frame.it;  // before the push below, which may move `frame`
    if (child.is_array() || child.is_object()) {
      out += child.is_array() ? '[' : '{';
      stack.push_back({&child, child.cbegin()});
    } else {
      scalar(child);
    }
  }
}

std::string show(const json& value) {
  std::string text;
  if (value.is_string() && value.get_ref<const std::string&>().size() > 64) {
    // Only the first 40 characters are shown; each byte prints as one or more.
    write_json(json(value.get_ref<const std::string&>().substr(0, 64)), text, false);
  } else {
    write_json(value, text, false, 60);
  }
  if (text.size() <= 60) return text;
  return value.is_string() ? text.substr(0, 40) + "...\"" : std::string("a long ") + json_type_name(value);
}

std::string type_name(unsigned bit) {
  switch (bit) {
    case kNull: return "null";
    case kBoolean: return "boolean";
    case kObject: return "object";
    case kArray: return "array";
    case kNumber: return "number";
    case kString: return "string";
    default: return "integer";
  }
}

std::size_t code_points(const std::string& text) {
  std::size_t n = 0;
  for (unsigned char c : text)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

// A pattern program this small cannot have more DFA states than RE2's DFA cache holds (see
// search()).
constexpr std::uint64_t kDfaSafeProgramSize = 12;

// Bytes of text read, in evaluations (see kBytesPerEvaluation).
std::uint64_t text_cost(std::size_t bytes) { return bytes / kBytesPerEvaluation; }

// The size of `value` in the budget's units: one per value (scalar, array or object) plus
// the bytes of its strings and keys / kBytesPerEvaluation. At least 1. Iterative: safe on
// a value of any depth.
std::uint64_t json_cost(const json& value) {
  std::uint64_t values = 0, bytes = 0;
  std::vector<const json*> stack{&value};
  while (!stack.empty()) {
    const json* v = stack.back();
    stack.pop_back();
    ++values;
    if (v->is_string()) {
      bytes += v->get_ref<const std::string&>().size();
    } else if (v->is_object()) {
      for (auto it = v->cbegin(); it != v->cend(); ++it) {
        bytes += it.key().size();
        stack.push_back(&*it);
      }
    } else if (v->is_array()) {
      for (const auto& child : *v) stack.push_back(&child);
    }
  }
  return values + text_cost(bytes);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Compiling: every keyword is checked for its type and range; $refs are resolved, in the
// document or in the documents the caller gives (scanned once each for their $ids and
// anchors); the same JSON value is compiled once, which also makes recursive schemas (a
// tree whose nodes $ref the tree) finite. Nothing here recurses: subschemas wait on a
// work list, so neither deep nesting nor a long chain of $refs can exhaust the stack.

namespace {

// A place in the schema document, for messages, built only when one is needed: a node's
// location and a suffix ("/type/0").
struct Where {
  const Node* node;
  std::string suffix;
  Where operator+(const std::string& more) const { return {node, suffix + more}; }
};

std::string describe_location(const std::string& location) {
  return location.empty() ? std::string("the root") : show_pointer(location);
}

// What a subschema inherits from where it sits: its base URI (the resource it belongs to)
// and whether the validation vocabulary is on (its metaschema may turn it off).
struct Context {
  std::uint32_t resource = 0;  // its base URI, interned (Compiler::uri_of())
  bool validation = true;
  bool formats = false;  // the format-assertion vocabulary is on
};

// Resolved URIs are interned, each at most this long, all of them together at most
// kMaxUriBytes: a relative "$id" resolves to its base plus itself, so without these a
// schema of a few MB with many of them under a long base could ask for gigabytes.
constexpr std::size_t kMaxUriLength = 2048;
constexpr std::size_t kMaxUriBytes = 8 << 20;

// The vocabularies this implementation knows: a metaschema may require only these.
bool known_vocabulary(const std::string& uri) {
  static const std::set<std::string> known = {
      "https://json-schema.org/draft/2020-12/vocab/core",
      "https://json-schema.org/draft/2020-12/vocab/applicator",
      "https://json-schema.org/draft/2020-12/vocab/unevaluated",
      "https://json-schema.org/draft/2020-12/vocab/validation",
      "https://json-schema.org/draft/2020-12/vocab/meta-data",
      "https://json-schema.org/draft/2020-12/vocab/format-annotation",
      "https://json-schema.org/draft/2020-12/vocab/format-assertion",
      "https://json-schema.org/draft/2020-12/vocab/content"};
  return known.count(uri) > 0;
}

}  // namespace

class Compiler {
 public:
  Compiler(const json& document, const CompileOptions& options)
      : document_(document), options_(options), schema_(new Schema()) {}

  std::shared_ptr<const Schema> run() {
    // Checked before anything else reads the document: copying "const" and "enum"
    // values, and comparing them while validating, recurse once per level.
    if (auto deep = find_too_deep(document_, kMaxJsonDepth))
      throw UserError("invalid JSON Schema at " + describe_location(*deep) + ": nested deeper than " +
                          std::to_string(kMaxJsonDepth) + " levels",
                      {}, {}, sqlstate::program_limit_exceeded);
    scan(document_, options_.base_uri);
    Context root{resource_id(options_.base_uri), true};
    if (auto found = scanned_.find(&document_); found != scanned_.end()) root = found->second;
    schema_->root_ = compile(document_, nullptr, "", root);
    // Filling a node may compile more (subschemas, $ref targets in other documents), and
    // a $dynamicRef needs every $dynamicAnchor of its name, in every document compiled.
    do {
      while (!pending_.empty()) {
        Pending next = std::move(pending_.back());
        pending_.pop_back();
        context_ = &next.context;
        fill(*next.node, *next.schema);
      }
    } while (compile_dynamic_anchors());
    check_ref_loops();
    std::sort(schema_->documents_used_.begin(), schema_->documents_used_.end());
    return std::shared_ptr<const Schema>(schema_.release());
  }

 private:
  [[noreturn]] void fail(const Where& where, const std::string& problem, const std::string& hint = {}) {
    throw UserError("invalid JSON Schema at " + describe_location(location_of(where.node) + where.suffix) + ": " +
                        problem,
                    {}, hint);
  }

  // Finds every schema resource ($id), $anchor and $dynamicAnchor of a document before
  // anything is compiled, so that a $ref can name one that comes later in the document,
  // and records each subschema's base URI and vocabulary. Only keywords that hold schemas
  // are entered: an "$id" inside "const", "enum" or an unknown keyword identifies nothing.
  // Iterative, on an explicit stack.
  void scan(const json& document, const std::string& retrieval_uri) {
    if (!document.is_object() && !document.is_boolean()) return;
    resources_.emplace(retrieval_uri, &document);  // "": the root document, known by no URI
    std::vector<std::pair<const json*, Context>> stack{{&document, Context{resource_id(retrieval_uri), true}}};
    while (!stack.empty()) {
      auto [schema, context] = std::move(stack.back());
      stack.pop_back();
      if (!schema->is_object()) {
        scanned_.emplace(schema, context);
        continue;
      }
      if (auto id = schema->find("$id"); id != schema->end() && id->is_string()) {
        context.resource = resource_id(split_fragment(resolve_uri(uri_of(context), id->get_ref<const std::string&>())).uri);
        resources_.emplace(uri_of(context), schema);
      }
      if (auto meta = schema->find("$schema"); meta != schema->end() && meta->is_string())
        vocabularies(resolve_uri(uri_of(context), meta->get_ref<const std::string&>()), context);
      if (auto anchor = schema->find("$anchor"); anchor != schema->end() && anchor->is_string())
        anchors_.emplace(std::make_pair(context.resource, anchor->get<std::string>()), schema);
      if (auto anchor = schema->find("$dynamicAnchor"); anchor != schema->end() && anchor->is_string()) {
        anchors_.emplace(std::make_pair(context.resource, anchor->get<std::string>()), schema);
        dynamic_anchors_.emplace(std::make_pair(context.resource, anchor->get<std::string>()), schema);
        dynamic_by_name_[anchor->get<std::string>()].emplace_back(schema);
      }
      if (!scanned_.emplace(schema, context).second) continue;
      for (const char* key : {"items", "contains", "additionalProperties", "propertyNames", "not", "if", "then",
                              "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema"})
        if (auto it = schema->find(key); it != schema->end()) stack.emplace_back(&*it, context);
      for (const char* key : {"prefixItems", "allOf", "anyOf", "oneOf"})
        if (auto it = schema->find(key); it != schema->end() && it->is_array())
          for (const auto& sub : *it) stack.emplace_back(&sub, context);
      for (const char* key : {"properties", "patternProperties", "$defs", "dependentSchemas"})
        if (auto it = schema->find(key); it != schema->end() && it->is_object())
          for (const auto& sub : *it) stack.emplace_back(&sub, context);
    }
  }

  // A document by its URI: a built-in metaschema or one of options_.documents. Not scanned.
  const json* find_document(const std::string& uri) {
    if (const json* builtin = builtin_document(uri)) return builtin;
    if (!options_.documents) return nullptr;
    auto it = options_.documents->find(uri);
    if (it == options_.documents->end()) return nullptr;
    if (used_.insert(uri).second) {
      // Registered schemas are checked when stored; this keeps the core safe on its own.
      if (find_too_deep(it->second, kMaxJsonDepth))
        throw UserError("invalid JSON Schema: the document " + show(json(uri)) + " is nested deeper than " +
                            std::to_string(kMaxJsonDepth) + " levels",
                        {}, {}, sqlstate::program_limit_exceeded);
      schema_->documents_used_.push_back(uri);
    }
    return &it->second;
  }

  // The vocabularies of a schema whose "$schema" is `uri`: whether validation and
  // format-assertion are on. A metaschema that lists vocabularies decides (one listed as
  // optional, false, is used too: we know it); one that requires a vocabulary we do not
  // know is refused (the specification requires it); an unknown metaschema (draft-07's,
  // say) or one without "$vocabulary" means the usual 2020-12 keywords.
  void vocabularies(const std::string& uri, Context& context) {
    context.validation = true;
    context.formats = false;
    const json* meta = find_document(split_fragment(uri).uri);
    if (!meta || !meta->is_object()) return;
    auto vocabulary = meta->find("$vocabulary");
    if (vocabulary == meta->end() || !vocabulary->is_object()) return;
    for (auto it = vocabulary->begin(); it != vocabulary->end(); ++it)
      if (it->is_boolean() && it->get<bool>() && !known_vocabulary(it.key()))
        throw UserError("invalid JSON Schema: its metaschema " + show(json(uri)) + " requires the vocabulary " +
                        show(json(it.key())) + ", which is not supported");
    context.validation = vocabulary->contains("https://json-schema.org/draft/2020-12/vocab/validation");
    context.formats = vocabulary->contains("https://json-schema.org/draft/2020-12/vocab/format-assertion");
  }

  std::uint32_t resource_id(const std::string& uri) {
    auto [it, added] = resource_ids_.emplace(uri, static_cast<std::uint32_t>(uris_.size()));
    if (added) {
      uri_bytes_ += uri.size();
      if (uri.size() > kMaxUriLength || uri_bytes_ > kMaxUriBytes)
        throw UserError("invalid JSON Schema: its identifiers resolve to URIs longer than " +
                            std::to_string(kMaxUriLength) + " bytes, or more than " + std::to_string(kMaxUriBytes) +
                            " bytes of them",
                        {}, "Use short \"$id\" URIs.", sqlstate::program_limit_exceeded);
      uris_.push_back(&it->first);
    }
    return it->second;
  }
  const std::string& uri_of(const Context& context) const { return *uris_[context.resource]; }

  // The node for `schema`, created (and queued for filling) on first use.
  const Node* compile(const json& schema, const Node* parent, std::string token, const Context& inherited) {
    auto known = by_value_.find(&schema);
    if (known != by_value_.end()) return known->second;
    Node& node = schema_->nodes_.emplace_back();
    node.parent = parent;
    node.token = std::move(token);
    by_value_[&schema] = &node;
    auto scanned = scanned_.find(&schema);
    const Context& context = scanned != scanned_.end() ? scanned->second : inherited;
    node.resource = context.resource;
    if (schema.is_boolean()) {
      node.constant = schema.get<bool>();
      return &node;
    }
    if (!schema.is_object())
      fail({&node, ""}, std::string("a schema must be an object or a boolean, not ") + json_type_name(schema));
    pending_.push_back({&schema, &node, context});
    return &node;
  }

  // Compiles the $dynamicAnchors named by some $dynamicRef that are not compiled yet, in
  // every document scanned so far. Whether it compiled any (then there is more to fill).
  bool compile_dynamic_anchors() {
    bool more = false;
    for (const std::string& name : dynamic_names_) {
      auto& targets = schema_->dynamic_anchors_[name];
      for (const json* anchor : dynamic_by_name_[name]) {
        const Context& context = scanned_.at(anchor);
        if (targets.count(context.resource)) continue;
        targets[context.resource] = compile(*anchor, nullptr, "#" + name, context);
        more = true;
      }
    }
    return more;
  }

  const Node* sub(const json& schema, const Node& node, const char* key) {
    return compile(schema.at(key), &node, std::string("/") + key, *context_);
  }

  std::size_t count(const json& value, const Where& where) {
    if (!value.is_number() || !is_integral(value) || value.get<double>() < 0)
      fail(where, "must be a non-negative integer, not " + show(value));
    // Counts beyond size_t (1e300 is a valid integer in JSON) mean "more than anything can
    // have": converting them would be undefined behaviour (found by the fuzzer).
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.get<double>() >= 18446744073709551615.0) return std::numeric_limits<std::size_t>::max();
    return static_cast<std::size_t>(value.get<double>());
  }

  double number(const json& value, const Where& where) {
    if (!value.is_number()) fail(where, std::string("must be a number, not ") + json_type_name(value));
    return value.get<double>();
  }

  Pattern pattern(const json& value, const Where& where) {
    if (!value.is_string()) fail(where, std::string("must be a regular expression string, not ") + json_type_name(value));
    const std::string& source = value.get_ref<const std::string&>();
    try {
      auto regex = compile_ecma_pattern(source);
      auto size = static_cast<std::uint64_t>(pattern_program_size(*regex));
      return Pattern{source, std::move(regex), size};
    } catch (const PatternError& e) {
      if (e.unsupported())
        fail(where, "the pattern " + show(value) + " uses " + e.what() + ", which is not supported",
             "Patterns are matched with RE2, in time linear in the string, which cannot do "
             "backreferences, lookahead or lookbehind; see https://github.com/google/re2/wiki/Syntax.");
      fail(where, show(value) + " is not a valid regular expression: " + e.what());
    }
  }

  std::vector<const Node*> schema_list(const json& schema, const Node& node, const char* key) {
    const json& list = schema.at(key);
    if (!list.is_array() || list.empty()) fail({&node, std::string("/") + key}, "must be a non-empty array of schemas");
    std::vector<const Node*> out;
    for (std::size_t i = 0; i < list.size(); ++i)
      out.push_back(compile(list[i], &node, std::string("/") + key + "/" + std::to_string(i), *context_));
    return out;
  }

  std::map<std::string, const Node*> schema_map(const json& schema, const Node& node, const char* key) {
    const json& map = schema.at(key);
    if (!map.is_object()) fail({&node, std::string("/") + key}, "must be an object of schemas");
    std::map<std::string, const Node*> out;
    for (auto it = map.begin(); it != map.end(); ++it)
      out[it.key()] = compile(*it, &node, std::string("/") + key + "/" + json_pointer_token(it.key()), *context_);
    return out;
  }

  unsigned type_bit(const json& name, const Where& where) {
    static const std::map<std::string, unsigned> bits = {
        {"null", kNull}, {"boolean", kBoolean}, {"object", kObject}, {"array", kArray},
        {"number", kNumber}, {"string", kString}, {"integer", kInteger}};
    if (name.is_string()) {
      auto it = bits.find(name.get<std::string>());
      if (it != bits.end()) return it->second;
    }
    fail(where, show(name) + " is not a type (null, boolean, object, array, number, string, integer)");
  }

  // What a $ref or $dynamicRef names: `ref` resolved against the base URI, the resource
  // with that URI (in this document, or a known document, scanned on first use), then the
  // fragment: a JSON Pointer into it, or an anchor. Refuses what resolves nowhere.
  struct Target {
    const json* schema = nullptr;  // nullptr: an unknown document, accepted (see CompileOptions)
    std::string token;             // its location, for messages
    bool dynamic_anchor = false;   // the fragment names a $dynamicAnchor
    std::string anchor;
  };
  Target locate(const std::string& ref, const Where& where) {
    UriAndFragment target = split_fragment(resolve_uri(uri_of(*context_), ref));
    auto resource = resources_.find(target.uri);
    if (resource == resources_.end()) {
      if (const json* document = find_document(target.uri)) scan(*document, target.uri);
      resource = resources_.find(target.uri);
    }
    if (resource == resources_.end()) {
      if (options_.unknown_documents_accepted && has_scheme(target.uri)) return {};
      fail(where, "$ref \"" + ref + "\" does not resolve: no schema is known as " + show(json(target.uri)),
           "A schema can refer to its own parts (\"#/$defs/name\", \"#anchor\"), to the metaschema, and to the "
           "schemas registered in its project with orchestration.register_schema().");
    }
    // Messages name a target outside the root document by the reference as written.
    std::string prefix = resource->second == &document_ ? std::string() : ref.substr(0, ref.find('#')) + "#";
    const std::string& fragment = target.fragment;
    if (fragment.empty()) return {resource->second, prefix, false, {}};
    if (fragment[0] != '/') {
      auto key = std::make_pair(resource_id(target.uri), fragment);
      auto anchor = anchors_.find(key);
      if (anchor == anchors_.end())
        fail(where, "$ref \"" + ref + "\" does not resolve: no $anchor or $dynamicAnchor " + show(json(fragment)) +
                        " in " + (target.uri.empty() ? std::string("this schema") : show(json(target.uri))));
      return {anchor->second, (prefix.empty() ? "#" : prefix) + fragment, dynamic_anchors_.count(key) > 0, fragment};
    }
    // A JSON Pointer (already %-decoded): ~1 is '/', ~0 is '~'.
    const json* at = resource->second;
    std::string walked;
    std::size_t start = 1;
    while (start <= fragment.size()) {
      std::size_t slash = fragment.find('/', start);
      std::string token = fragment.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      std::string unescaped;
      for (std::size_t i = 0; i < token.size(); ++i) {
        if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
          unescaped += token[i + 1] == '0' ? '~' : '/';
          ++i;
        } else {
          unescaped += token[i];
        }
      }
      if (at->is_object() && at->contains(unescaped)) {
        at = &(*at)[unescaped];
      } else if (at->is_array() && !unescaped.empty() &&
                 unescaped.find_first_not_of("0123456789") == std::string::npos &&
                 unescaped.size() < 10 && std::stoul(unescaped) < at->size()) {
        at = &(*at)[std::stoul(unescaped)];
      } else {
        fail(where, "$ref \"" + ref + "\" does not resolve: nothing at \"" + walked + "/" + token + "\"");
      }
      walked += "/" + token;
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return {at, prefix + walked, false, {}};
  }

  // The node a $ref or $dynamicRef applies statically.
  const Node* compile_target(const Target& target) {
    static const json kAccepted = true;  // an unknown document, accepted for now
    if (!target.schema) return compile(kAccepted, nullptr, "", *context_);
    return compile(*target.schema, nullptr, target.token, *context_);
  }

  // "$defs/address" for "#/$defs/address", "the root schema" for "#": how messages name
  // the schema a reference applies.
  static std::string reference_name(const std::string& ref) {
    if (ref == "#" || ref.empty()) return "the root schema";
    if (ref.compare(0, 2, "#/") == 0) return ref.substr(2);
    return ref;
  }

  void fill(Node& node, const json& schema) {
    auto where = [&](const char* key) { return Where{&node, std::string("/") + key}; };
    for (const char* key : {"$id", "$anchor", "$dynamicAnchor", "$schema"})
      if (schema.contains(key) && !schema[key].is_string()) fail(where(key), "must be a string");
    if (context_->validation) fill_validation(node, schema);
    fill_applicators(node, schema);
  }

  // The validation vocabulary: the keywords that look at a value, not into it.
  void fill_validation(Node& node, const json& schema) {
    auto where = [&](const char* key) { return Where{&node, std::string("/") + key}; };
    if (schema.contains("type")) {
      const json& type = schema["type"];
      if (type.is_array()) {
        if (type.empty()) fail(where("type"), "must not be an empty array");
        for (std::size_t i = 0; i < type.size(); ++i) {
          unsigned bit = type_bit(type[i], where("type") + "/" + std::to_string(i));
          if (node.types & bit) fail(where("type"), "lists " + show(type[i]) + " twice");
          node.types |= bit;
        }
      } else {
        node.types = type_bit(type, where("type"));
      }
    }
    if (schema.contains("enum")) {
      if (!schema["enum"].is_array()) fail(where("enum"), std::string("must be an array, not ") + json_type_name(schema["enum"]));
      node.enum_values = schema["enum"].get<std::vector<json>>();
      bool strings = true;
      for (const auto& candidate : *node.enum_values) {
        node.enum_costs.push_back(json_cost(candidate));
        strings = strings && candidate.is_string();
      }
      if (strings && node.enum_values->size() > 8) {
        node.enum_strings.emplace();
        for (const auto& candidate : *node.enum_values) node.enum_strings->insert(candidate.get<std::string>());
      }
    }
    if (schema.contains("const")) {
      node.const_value = schema["const"];
      node.const_cost = json_cost(schema["const"]);
    }

    if (schema.contains("minimum")) node.minimum = number(schema["minimum"], where("minimum"));
    if (schema.contains("maximum")) node.maximum = number(schema["maximum"], where("maximum"));
    if (schema.contains("exclusiveMinimum")) node.exclusive_minimum = number(schema["exclusiveMinimum"], where("exclusiveMinimum"));
    if (schema.contains("exclusiveMaximum")) node.exclusive_maximum = number(schema["exclusiveMaximum"], where("exclusiveMaximum"));
    if (schema.contains("multipleOf")) {
      node.multiple_of = number(schema["multipleOf"], where("multipleOf"));
      if (!(*node.multiple_of > 0)) fail(where("multipleOf"), "must be greater than 0");
    }

    struct Count { const char* key; std::optional<std::size_t> Node::*field; };
    for (const Count& c : {Count{"minLength", &Node::min_length}, Count{"maxLength", &Node::max_length},
                           Count{"minItems", &Node::min_items}, Count{"maxItems", &Node::max_items},
                           Count{"minContains", &Node::min_contains}, Count{"maxContains", &Node::max_contains},
                           Count{"minProperties", &Node::min_properties}, Count{"maxProperties", &Node::max_properties}})
      if (schema.contains(c.key)) node.*c.field = count(schema[c.key], where(c.key));
    if (schema.contains("pattern")) node.pattern = pattern(schema["pattern"], where("pattern"));
    if (schema.contains("uniqueItems")) {
      if (!schema["uniqueItems"].is_boolean()) fail(where("uniqueItems"), "must be true or false");
      node.unique_items = schema["uniqueItems"].get<bool>();
    }
    if (schema.contains("required")) {
      const json& list = schema["required"];
      if (!list.is_array()) fail(where("required"), "must be an array of property names");
      for (const auto& name : list) {
        if (!name.is_string()) fail(where("required"), "must list strings, not " + show(name));
        node.required.push_back(name.get<std::string>());
      }
    }
    if (schema.contains("dependentRequired")) {
      const json& map = schema["dependentRequired"];
      if (!map.is_object()) fail(where("dependentRequired"), "must be an object of arrays of property names");
      for (auto it = map.begin(); it != map.end(); ++it) {
        Where at = where("dependentRequired") + "/" + json_pointer_token(it.key());
        if (!it->is_array()) fail(at, "must be an array of property names");
        for (const auto& name : *it) {
          if (!name.is_string()) fail(at, "must list strings");
          node.dependent_required[it.key()].push_back(name.get<std::string>());
        }
      }
    }
  }

  // The applicators (core, applicator and unevaluated vocabularies), and "format".
  void fill_applicators(Node& node, const json& schema) {
    auto where = [&](const char* key) { return Where{&node, std::string("/") + key}; };
    if (schema.contains("prefixItems")) node.prefix_items = schema_list(schema, node, "prefixItems");
    if (schema.contains("items")) node.items = sub(schema, node, "items");
    if (schema.contains("contains")) node.contains = sub(schema, node, "contains");

    if (schema.contains("properties")) node.properties = schema_map(schema, node, "properties");
    if (schema.contains("patternProperties")) {
      const json& map = schema["patternProperties"];
      if (!map.is_object()) fail(where("patternProperties"), "must be an object of schemas");
      for (auto it = map.begin(); it != map.end(); ++it) {
        std::string token = "/patternProperties/" + json_pointer_token(it.key());
        node.pattern_properties.emplace_back(pattern(json(it.key()), {&node, token}), compile(*it, &node, token, *context_));
      }
    }
    if (schema.contains("additionalProperties")) node.additional_properties = sub(schema, node, "additionalProperties");
    if (schema.contains("propertyNames")) node.property_names = sub(schema, node, "propertyNames");
    if (schema.contains("dependentSchemas")) node.dependent_schemas = schema_map(schema, node, "dependentSchemas");

    if (schema.contains("allOf")) node.all_of = schema_list(schema, node, "allOf");
    if (schema.contains("anyOf")) node.any_of = schema_list(schema, node, "anyOf");
    if (schema.contains("oneOf")) node.one_of = schema_list(schema, node, "oneOf");
    if (schema.contains("not")) node.not_schema = sub(schema, node, "not");
    if (schema.contains("if")) node.if_schema = sub(schema, node, "if");
    if (schema.contains("then")) node.then_schema = sub(schema, node, "then");
    if (schema.contains("else")) node.else_schema = sub(schema, node, "else");
    if (schema.contains("$defs")) schema_map(schema, node, "$defs");  // checked, compiled on use
    if (schema.contains("format")) {
      if (!schema["format"].is_string()) fail(where("format"), "must be a string");
      if (context_->formats || options_.format_assertion) node.format = schema["format"].get<std::string>();
    }
    if (schema.contains("unevaluatedItems")) node.unevaluated_items = sub(schema, node, "unevaluatedItems");
    if (schema.contains("unevaluatedProperties")) node.unevaluated_properties = sub(schema, node, "unevaluatedProperties");
    if (schema.contains("$ref")) {
      if (!schema["$ref"].is_string()) fail(where("$ref"), "must be a string");
      node.ref_name = reference_name(schema["$ref"].get<std::string>());
      node.ref = compile_target(locate(schema["$ref"].get<std::string>(), where("$ref")));
    }
    if (schema.contains("$dynamicRef")) {
      if (!schema["$dynamicRef"].is_string()) fail(where("$dynamicRef"), "must be a string");
      const std::string& ref = schema["$dynamicRef"].get_ref<const std::string&>();
      Target target = locate(ref, where("$dynamicRef"));
      node.dynamic_ref_name = reference_name(ref);
      node.dynamic_ref = compile_target(target);
      // Only a reference that lands on a $dynamicAnchor looks in the dynamic scope; any
      // other is a plain $ref.
      if (target.dynamic_anchor) {
        dynamic_names_.insert(target.anchor);
        node.dynamic_targets = &schema_->dynamic_anchors_[target.anchor];
        schema_->tracks_scope_ = true;
      }
    }
  }

  // Edges that apply another schema to the same value. A cycle of them ($ref to itself,
  // directly or through allOf/anyOf/...) would recurse for ever on any value: refuse it.
  // A depth-first search on an explicit stack: a chain of 10,000 $refs is fine.
  //
  // Without cycles the edges form a DAG, but paths through it can still be exponentially
  // many: 30 levels of {"allOf": [{"$ref": next}, {"$ref": next}]} apply the last level
  // 2^30 times to the same value. The number of schemas one value may be checked against
  // at a node, before validation looks into the value, is 1 + the sum over its edges
  // (counted in post-order, saturating); a node where it passes kEvaluationBudgetBase
  // could spend the whole budget of a small instance on one value, and no real schema
  // comes near it (they need tens to hundreds), so the schema is refused here, naming the
  // first such node, rather than at every validation. It is an upper bound: anyOf stops at
  // the first match and only one of then/else applies, but a schema whose worst case is
  // this large is a mistake or an attack. Repetition through the instance's depth
  // ({"items": {"allOf": [{"$ref": "#"}, {"$ref": "#"}]}}) is left to the runtime budget.
  void check_ref_loops() {
    enum Mark { kVisiting = 1, kDone = 2 };
    std::unordered_map<const Node*, int> marks;
    std::unordered_map<const Node*, std::uint64_t> fan_out;  // of the nodes marked kDone
    struct Visit {
      const Node* node;
      std::vector<const Node*> next;
      std::size_t i = 0;
    };
    auto edges = [](const Node* node) {
      std::vector<const Node*> next(node->all_of);
      next.insert(next.end(), node->any_of.begin(), node->any_of.end());
      next.insert(next.end(), node->one_of.begin(), node->one_of.end());
      for (const Node* n : {node->ref, node->dynamic_ref, node->not_schema, node->if_schema, node->then_schema,
                            node->else_schema})
        if (n) next.push_back(n);
      for (const auto& entry : node->dependent_schemas) next.push_back(entry.second);
      return next;
    };
    auto name = [](const Node* n) { return "#" + location_of(n); };
    std::vector<Visit> stack;
    for (const Node& root : schema_->nodes_) {
      if (marks[&root] == kDone) continue;
      marks[&root] = kVisiting;
      stack.push_back({&root, edges(&root)});
      while (!stack.empty()) {
        Visit& visit = stack.back();
        if (visit.i == visit.next.size()) {
          std::uint64_t total = 1;
          for (const Node* next : visit.next) total = std::min(total + fan_out[next], kSaturated);
          if (total > kEvaluationBudgetBase)
            throw UserError("invalid JSON Schema at " + describe_location(location_of(visit.node)) +
                                ": applying it to one value may take more than " +
                                std::to_string(kEvaluationBudgetBase) +
                                " evaluations (its $refs and allOf/anyOf/oneOf/not/if/then/else/dependentSchemas "
                                "apply the same subschemas to the same value again and again)",
                            {}, "Simplify the schema: refer to each definition once where possible.",
                            sqlstate::program_limit_exceeded);
          fan_out[visit.node] = total;
          marks[visit.node] = kDone;
          stack.pop_back();
          continue;
        }
        const Node* node = visit.next[visit.i++];
        int& mark = marks[node];
        if (mark == kDone) continue;
        if (mark == kVisiting) {
          std::string loop;
          bool in = false;
          for (const Visit& v : stack) {
            if (v.node == node) in = true;
            if (in) loop += name(v.node) + " -> ";
          }
          fail({node, ""}, "$ref loop " + loop + name(node) + " applies schemas to the same value for ever");
        }
        mark = kVisiting;
        stack.push_back({node, edges(node)});
      }
    }
  }

  // Beyond any limit, and far from overflowing when added to itself.
  static constexpr std::uint64_t kSaturated = std::uint64_t{1} << 62;

  const json& document_;
  const CompileOptions& options_;
  std::unique_ptr<Schema> schema_;
  std::unordered_map<const json*, const Node*> by_value_;
  struct Pending {
    const json* schema;
    Node* node;
    Context context;
  };
  std::vector<Pending> pending_;  // compiled, not yet filled
  const Context* context_ = nullptr;  // of the node being filled
  // What scan() found, in every document read so far: each subschema's context, the
  // resources by URI, the anchors by "URI#name".
  std::unordered_map<const json*, Context> scanned_;
  std::unordered_map<std::string, const json*> resources_;
  std::map<std::pair<std::uint32_t, std::string>, const json*> anchors_, dynamic_anchors_;  // by resource, name
  std::unordered_map<std::string, std::vector<const json*>> dynamic_by_name_;
  std::set<std::string> dynamic_names_;  // named by a $dynamicRef
  std::unordered_map<std::string, std::uint32_t> resource_ids_;
  std::vector<const std::string*> uris_;  // by resource id (keys of resource_ids_: stable)
  std::size_t uri_bytes_ = 0;
  std::set<std::string> used_;  // of options_.documents
};

std::shared_ptr<const Schema> Schema::compile(const json& schema, const CompileOptions& options) {
  return Compiler(schema, options).run();
}

// ---------------------------------------------------------------------------------------
// Validating. check() returns whether `value` satisfies `node`; when `out` is given it also
// records why not. Subschemas whose failure is summarised (anyOf, oneOf, not, if,
// contains) are checked without recording.

// check(), check_array() and check_object() are the only frames on the recursive path, so
// they are kept small: every message is built in a helper of its own (NOINLINE), whose
// temporaries live only while it runs. Under ASan in a debug build this takes a level of
// validation from about 3.7 KB of stack to the figure json_limits_test.cpp prints.
#define NOINLINE __attribute__((noinline))
#define ALWAYS_INLINE inline __attribute__((always_inline))

namespace {

// What the keywords applied to one value evaluated of it (the annotations of
// properties, patternProperties, additionalProperties, prefixItems, items, contains and
// the unevaluated keywords themselves), gathered only below a node with
// unevaluatedProperties or unevaluatedItems. A subschema that fails contributes nothing.
struct Evaluated {
  bool all_items = false, all_properties = false;
  std::size_t prefix = 0;                               // items [0, prefix)
  std::vector<bool> items;                              // others, by index (contains)
  std::unordered_set<const std::string*> properties;    // the object's own keys: stable addresses

  bool item(std::size_t i) const { return all_items || i < prefix || (i < items.size() && items[i]); }
  bool property(const std::string& key) const { return all_properties || properties.count(&key) > 0; }
  void mark_item(std::size_t i, std::size_t n) {
    if (items.size() < n) items.resize(n);
    items[i] = true;
  }
  void merge(const Evaluated& other) {
    all_items = all_items || other.all_items;
    all_properties = all_properties || other.all_properties;
    prefix = std::max(prefix, other.prefix);
    if (items.size() < other.items.size()) items.resize(other.items.size());
    for (std::size_t i = 0; i < other.items.size(); ++i)
      if (other.items[i]) items[i] = true;
    properties.insert(other.properties.begin(), other.properties.end());
  }
  std::uint64_t size() const { return 1 + properties.size() + items.size() / 64; }
};

}  // namespace

class Validator {
 public:
  Validator(const Schema& schema, const json& instance, std::size_t max_violations)
      : max_(max_violations), instance_(instance), tracks_scope_(schema.tracks_scope_) {}

  // `depth` counts every check() on the stack: each level of the instance and each step
  // that applies another schema to the same value ($ref, $dynamicRef, allOf, anyOf,
  // oneOf, not, if/then/else, dependentSchemas). Both are bounded here, so validation
  // never recurses deeper than kMaxValidationDepth, whatever the schema and the instance.
  bool check(const Node& node, const json& value, std::vector<Violation>* out, std::size_t depth) {
    if (depth > kMaxValidationDepth) too_deep();
    charge(1);
    if (node.constant) {
      if (!*node.constant) report(out, "no value is allowed here (the schema is false)");
      return *node.constant;
    }
    if (node.types && !matches_type(node.types, value)) {
      fail_type(node, value, out);
      return false;  // the other keywords' messages would only repeat this one
    }
    // The rare cases (gathering what is evaluated for unevaluatedItems/Properties, a
    // dynamic scope to keep) take a frame of their own; the common one stays as small as
    // it can, for the stack (json_limits_test.cpp measures it).
    bool entered = tracks_scope_ && (scope_.empty() || scope_.back() != node.resource);
    if (collect_ || entered || node.unevaluated_items || node.unevaluated_properties)
      return check_general(node, value, out, depth, entered);
    return check_keywords<false>(node, value, out, depth);
  }

 private:
  // The general path takes more stack a step (it has more frames), so a step on it counts
  // twice against kMaxValidationDepth: a schema with unevaluated keywords or $dynamicRefs
  // at every level validates an instance up to about two thirds of kMaxJsonDepth deep
  // within the stack the common path needs for all of it (json_limits_test.cpp).
  NOINLINE bool check_general(const Node& node, const json& value, std::vector<Violation>* out, std::size_t depth,
                              bool entered) {
    if (++depth > kMaxValidationDepth) too_deep();
    if (entered) scope_.push_back(node.resource);  // the dynamic scope: resources entered
    bool ok = node.unevaluated_items || node.unevaluated_properties ? check_unevaluated(node, value, out, depth)
                                                                    : keywords_general(node, value, out, depth);
    if (entered) scope_.pop_back();
    return ok;
  }

  // The general instantiation, in a frame of its own: inlined into each caller, its locals
  // would take stack in every frame of the general path (at -O0, where frames are largest).
  NOINLINE bool keywords_general(const Node& node, const json& value, std::vector<Violation>* out, std::size_t depth) {
    return check_keywords<true>(node, value, out, depth);
  }

  // The keywords of `node` other than type (checked by check()). kGeneral: annotations
  // may be gathered (collect_); else none are, and every subschema is a plain check().
  template <bool kGeneral>
  ALWAYS_INLINE bool check_keywords(const Node& node, const json& value, std::vector<Violation>* out,
                                    std::size_t depth) {
    bool ok = check_value(node, value, out);
    if constexpr (kGeneral) {
      // Items and properties are other values: what they evaluate is not this value's.
      Evaluated* mine = collect_;
      collect_ = nullptr;
      if (value.is_array()) ok = check_array(node, value, out, depth, mine) && ok;
      if (value.is_object()) ok = check_object(node, value, out, depth, mine) && ok;
      collect_ = mine;
    } else {
      if (value.is_array()) ok = check_array(node, value, out, depth, nullptr) && ok;
      if (value.is_object()) ok = check_object(node, value, out, depth, nullptr) && ok;
    }
    if (!node.dependent_schemas.empty() && value.is_object())
      ok = check_dependent_schemas(node, value, out, depth) && ok;

    for (const Node* part : node.all_of) ok = apply<kGeneral>(*part, value, out, depth) && ok;
    if (!node.any_of.empty()) ok = check_any_of(node, value, out, depth) && ok;
    if (!node.one_of.empty()) ok = check_one_of(node, value, out, depth) && ok;
    if (node.not_schema && matches_not(*node.not_schema, value, depth))
      ok = fail_text(out, "must not match the schema in \"not\"");
    if (node.if_schema) {
      const Node* branch = apply<kGeneral>(*node.if_schema, value, nullptr, depth) ? node.then_schema : node.else_schema;
      if (branch) ok = apply<kGeneral>(*branch, value, out, depth) && ok;
    }
    if (node.ref) {
      std::size_t before = out ? out->size() : 0;
      if (!apply<kGeneral>(*node.ref, value, out, depth)) {
        ok = false;
        if (out && out->size() > before) name_reference(*out, before, node.ref_name);
      }
    }
    if (node.dynamic_ref) ok = check_dynamic_ref(node, value, out, depth) && ok;
    return ok;
  }

  template <bool kGeneral>
  ALWAYS_INLINE bool apply(const Node& part, const json& value, std::vector<Violation>* out, std::size_t depth) {
    if constexpr (kGeneral) return in_place(part, value, out, depth);
    return check(part, value, out, depth + 1);
  }

  NOINLINE bool check_any_of(const Node& node, const json& value, std::vector<Violation>* out, std::size_t depth) {
    bool any = false;
    for (const Node* part : node.any_of)
      if (in_place(*part, value, nullptr, depth)) {
        any = true;
        if (!collect_) break;  // gathering annotations needs every subschema that matches
      }
    return any || fail_count(out, "does not match any of the ", node.any_of.size(), " schemas in anyOf");
  }

  NOINLINE bool check_one_of(const Node& node, const json& value, std::vector<Violation>* out, std::size_t depth) {
    std::size_t matched[2], n = 0;
    for (std::size_t i = 0; i < node.one_of.size() && n < 2; ++i)
      if (in_place(*node.one_of[i], value, nullptr, depth)) matched[n++] = i;
    if (n == 0) return fail_count(out, "does not match any of the ", node.one_of.size(), " schemas in oneOf");
    if (n > 1) return fail_one_of(out, matched[0], matched[1]);
    return true;
  }

  NOINLINE bool check_dynamic_ref(const Node& node, const json& value, std::vector<Violation>* out,
                                  std::size_t depth) {
    std::size_t before = out ? out->size() : 0;
    if (in_place(dynamic_target(node), value, out, depth)) return true;
    if (out && out->size() > before) name_reference(*out, before, node.dynamic_ref_name);
    return false;
  }

  // A subschema applied to the same value (allOf, $ref, ...): what it evaluates counts
  // for this value's unevaluated keywords if it matches.
  ALWAYS_INLINE bool in_place(const Node& part, const json& value, std::vector<Violation>* out, std::size_t depth) {
    if (!collect_) return check(part, value, out, depth + 1);
    return in_place_gathering(part, value, out, depth);
  }
  NOINLINE bool in_place_gathering(const Node& part, const json& value, std::vector<Violation>* out,
                                   std::size_t depth) {
    Evaluated* outer = collect_;
    Evaluated mine;
    collect_ = &mine;
    bool ok = check(part, value, out, depth + 1);
    collect_ = outer;
    if (ok) {
      charge(mine.size());
      outer->merge(mine);
    }
    return ok;
  }

  // "not": whatever its subschema evaluates is never an annotation of this value.
  NOINLINE bool matches_not(const Node& part, const json& value, std::size_t depth) {
    Evaluated* outer = collect_;
    collect_ = nullptr;
    bool matched = check(part, value, nullptr, depth + 1);
    collect_ = outer;
    return matched;
  }

  NOINLINE bool check_dependent_schemas(const Node& node, const json& object, std::vector<Violation>* out,
                                        std::size_t depth) {
    bool ok = true;
    charge(node.dependent_schemas.size());
    for (const auto& [name, dependent] : node.dependent_schemas)
      if (object.contains(name)) ok = in_place(*dependent, object, out, depth) && ok;
    return ok;
  }

  // A $dynamicRef to a $dynamicAnchor applies the schema with that anchor in the outermost
  // resource of the dynamic scope that has one (2020-12 core, 8.2.3.2); any other is a $ref.
  const Node& dynamic_target(const Node& node) {
    if (!node.dynamic_targets) return *node.dynamic_ref;
    charge(1 + scope_.size() / 16);
    for (std::uint32_t resource : scope_) {
      auto found = node.dynamic_targets->find(resource);
      if (found != node.dynamic_targets->end()) return *found->second;
    }
    return *node.dynamic_ref;
  }

  // A $ref or $dynamicRef that failed: its violations say which schema it applied, once
  // (the innermost reference names it; outer ones would repeat themselves at every level).
  NOINLINE void name_reference(std::vector<Violation>& out, std::size_t from, const std::string& name) {
    if (named_.size() < out.size()) named_.resize(out.size());
    for (std::size_t i = from; i < out.size(); ++i) {
      if (named_[i]) continue;
      named_[i] = true;
      Violation& violation = out[i];
      if (violation.path == path_)
        violation.message = "does not match " + name + ": " + violation.message;
      else
        violation.message += " (in " + name + ")";
    }
  }

  // A node with unevaluatedItems or unevaluatedProperties: its other keywords run first,
  // gathering what they evaluate, then these apply to the rest.
  NOINLINE bool check_unevaluated(const Node& node, const json& value, std::vector<Violation>* out,
                                  std::size_t depth) {
    Evaluated* outer = collect_;
    Evaluated mine;
    collect_ = &mine;
    bool ok = keywords_general(node, value, out, depth);
    collect_ = nullptr;
    if (ok || out) {
      if (node.unevaluated_items && value.is_array()) ok = unevaluated_items(node, value, mine, out, depth) && ok;
      if (node.unevaluated_properties && value.is_object())
        ok = unevaluated_properties(node, value, mine, out, depth) && ok;
    }
    collect_ = outer;
    if (ok && outer) {
      charge(mine.size());
      outer->merge(mine);
    }
    return ok;
  }

  bool unevaluated_items(const Node& node, const json& array, Evaluated& seen, std::vector<Violation>* out,
                         std::size_t depth) {
    bool ok = true;
    for (std::size_t i = 0; i < array.size(); ++i) {
      if (seen.item(i)) continue;
      if (node.unevaluated_items->constant == false) {
        ok = fail_unevaluated(out, "has the item " + std::to_string(i) + ", which is not allowed (unevaluatedItems)");
      } else {
        std::size_t mark = descend(i, array[i]);
        ok = check(*node.unevaluated_items, array[i], out, depth + 1) && ok;
        ascend(mark);
      }
      if (!ok && !out) return false;
    }
    seen.all_items = true;
    return ok;
  }

  bool unevaluated_properties(const Node& node, const json& object, Evaluated& seen, std::vector<Violation>* out,
                              std::size_t depth) {
    bool ok = true;
    for (auto it = object.begin(); it != object.end(); ++it) {
      const std::string& key = it.key();
      charge(1);
      if (seen.property(key)) continue;
      if (node.unevaluated_properties->constant == false) {
        ok = fail_unevaluated(out, "has the property " + show(json(key)) + ", which is not allowed (unevaluatedProperties)");
      } else {
        std::size_t mark = descend(key, *it);
        ok = check(*node.unevaluated_properties, *it, out, depth + 1) && ok;
        ascend(mark);
      }
      if (!ok && !out) return false;
    }
    seen.all_properties = true;
    return ok;
  }

  NOINLINE bool fail_unevaluated(std::vector<Violation>* out, const std::string& message) {
    report(out, message);
    return false;
  }

  std::string where() const { return path_.empty() ? std::string("the root") : show_pointer(path_); }

  // The work budget (see kEvaluationBudgetBase). Everything whose cost does not shrink
  // with the instance is charged here before it is done, so that the budget bounds the
  // time: a check() is 1, and so on (json_schema.hpp lists it).
  void charge(std::uint64_t evaluations) {
    spent_ += evaluations;
    if (spent_ > limit_) over_budget();
  }

  // The base is spent: only now is the instance measured (a walk over all of it, which a
  // small validation should not pay for) and the budget raised by its size; when that is
  // spent too, validation stops.
  NOINLINE void over_budget() {
    if (!scaled_) {
      scaled_ = true;
      size_ = json_cost(instance_);
      limit_ = kEvaluationBudgetBase + kEvaluationsPerInstanceUnit * size_;
      if (spent_ <= limit_) return;
    }
    throw UserError("JSON Schema validation is too expensive: more than " + std::to_string(limit_) +
                        " evaluations (the schema's references or combinators multiply the work; stopped at " +
                        where() + ")",
                    "The budget is " + std::to_string(kEvaluationBudgetBase) + " evaluations plus " +
                        std::to_string(kEvaluationsPerInstanceUnit) + " per unit of the instance's size (" +
                        std::to_string(size_) +
                        " units: one per value, and one per " + std::to_string(kBytesPerEvaluation) +
                        " bytes of strings and keys). Every subschema applied to a value counts as one.",
                    "Simplify the schema: a definition referred to twice from allOf, anyOf or oneOf, at every "
                    "level of a chain of definitions or of a recursive schema, doubles the work at every level.",
                    sqlstate::program_limit_exceeded);
  }

  // Whether a violation would be kept: messages that cost more than a few bytes to build
  // are built only then.
  bool wanted(const std::vector<Violation>* out) const { return out && out->size() < max_; }

  [[noreturn]] NOINLINE void too_deep() const {
    throw UserError("JSON Schema validation nested deeper than " + std::to_string(kMaxValidationDepth) +
                        " levels (at " + where() + ")",
                    "Every level of the instance and every $ref, $dynamicRef, allOf, anyOf, oneOf, not, if, "
                    "then, else or dependentSchemas step counts as one; twice below unevaluatedProperties or "
                    "unevaluatedItems, and where a $dynamicRef enters another schema resource.",
                    {}, sqlstate::program_limit_exceeded);
  }

  // Appends an item's index or a property's name to the path before checking `child`.
  // Refuses a child array or object deeper than kMaxJsonDepth levels, the limit
  // parse_json_limited() puts on every document: an instance that did not come through it
  // is refused here, where it is deep, rather than recursed over.
  NOINLINE std::size_t descend(std::size_t index, const json& child) {
    std::size_t mark = path_.size();
    path_ += '/';
    path_ += std::to_string(index);
    entered(child);
    return mark;
  }
  NOINLINE std::size_t descend(const std::string& key, const json& child) {
    std::size_t mark = path_.size();
    path_ += '/';
    path_ += json_pointer_token(key);
    entered(child);
    return mark;
  }
  void entered(const json& child) {
    if (++levels_ >= kMaxJsonDepth && (child.is_array() || child.is_object()))
      throw UserError("JSON Schema validation: the instance is nested deeper than " + std::to_string(kMaxJsonDepth) +
                          " levels (at " + where() + ")",
                      {}, {}, sqlstate::program_limit_exceeded);
  }
  void ascend(std::size_t mark) {
    --levels_;
    path_.resize(mark);
  }

  void report(std::vector<Violation>* out, const std::string& message) {
    if (out && out->size() < max_) out->push_back({path_, message});
  }
  // Without building a std::string for a message nobody keeps.
  void report(std::vector<Violation>* out, const char* message) {
    if (wanted(out)) out->push_back({path_, message});
  }
  // Report and return false, so that callers can write ok = fail_...(...).
  NOINLINE bool fail_text(std::vector<Violation>* out, const char* message) {
    report(out, message);
    return false;
  }
  NOINLINE bool fail_count(std::vector<Violation>* out, const char* before, std::size_t n, const char* after) {
    if (wanted(out)) report(out, before + std::to_string(n) + after);
    return false;
  }
  NOINLINE bool fail_one_of(std::vector<Violation>* out, std::size_t a, std::size_t b) {
    if (wanted(out)) report(out, "matches oneOf schemas " + std::to_string(a) + " and " + std::to_string(b) + "; exactly one must match");
    return false;
  }
  NOINLINE void fail_type(const Node& node, const json& value, std::vector<Violation>* out) {
    // Most failures are inside anyOf, oneOf, not or if, where nobody reads the message:
    // building it would cost more than the check (7 times slower, measured on an
    // anyOf-heavy schema).
    if (!wanted(out)) return;
    std::string expected;
    for (unsigned bit = 1; bit <= kInteger; bit <<= 1)
      if (node.types & bit) expected += (expected.empty() ? "\"" : " or \"") + type_name(bit) + "\"";
    report(out, show(value) + " is not of type " + expected);
  }

  static bool matches_type(unsigned types, const json& value) {
    switch (value.type()) {
      case json::value_t::null: return types & kNull;
      case json::value_t::boolean: return types & kBoolean;
      case json::value_t::object: return types & kObject;
      case json::value_t::array: return types & kArray;
      case json::value_t::string: return types & kString;
      case json::value_t::number_integer:
      case json::value_t::number_unsigned:
      case json::value_t::number_float:
        return (types & kNumber) || ((types & kInteger) && is_integral(value));
      default: return false;
    }
  }

  // The keywords that look at `value` itself, not into it: none of them recurses.
  NOINLINE bool check_value(const Node& node, const json& value, std::vector<Violation>* out) {
    bool ok = true;
    // `message` is a function that builds the message, called only for one that is kept.
    auto fail = [&](auto message) {
      ok = false;
      if (wanted(out)) report(out, message());
    };
    if (node.const_value) {
      charge(node.const_cost);  // == walks at most the candidate
      if (!(*node.const_value == value)) fail([&] { return show(value) + " is not " + show(*node.const_value); });
    }
    if (node.enum_values) {
      bool found = false;
      if (node.enum_strings) {
        if (value.is_string()) {
          const std::string& text = value.get_ref<const std::string&>();
          charge(1 + text_cost(text.size()));  // hashing it
          found = node.enum_strings->count(text) > 0;
        }
      } else {
        for (std::size_t i = 0; i < node.enum_values->size() && !found; ++i) {
          charge(node.enum_costs[i]);
          found = (*node.enum_values)[i] == value;
        }
      }
      if (!found) {
        ok = false;
        // Showing the enum copies all of it: only for a message that is kept.
        if (wanted(out)) report(out, show(value) + " is not one of " + show(json(*node.enum_values)));
      }
    }
    if (value.is_number()) check_number(node, value, fail);
    if (value.is_string()) check_string(node, value.get_ref<const std::string&>(), fail);
    return ok;
  }

  template <typename Fail>
  static void check_number(const Node& node, const json& value, Fail& fail) {
    double x = value.get<double>();
    auto shown = [&] { return show(value); };
    auto num = [](double d) { return json(d).dump(); };
    if (node.minimum && x < *node.minimum) fail([&] { return shown() + " is less than the minimum " + num(*node.minimum); });
    if (node.maximum && x > *node.maximum) fail([&] { return shown() + " is greater than the maximum " + num(*node.maximum); });
    if (node.exclusive_minimum && x <= *node.exclusive_minimum)
      fail([&] { return shown() + " is not greater than " + num(*node.exclusive_minimum); });
    if (node.exclusive_maximum && x >= *node.exclusive_maximum)
      fail([&] { return shown() + " is not less than " + num(*node.exclusive_maximum); });
    if (node.multiple_of) {
      double q = x / *node.multiple_of;
      bool multiple = std::isfinite(q) && std::fabs(q - std::round(q)) <= 1e-9 * std::max(1.0, std::fabs(q));
      if (!multiple) fail([&] { return shown() + " is not a multiple of " + num(*node.multiple_of); });
    }
  }

  template <typename Fail>
  void check_string(const Node& node, const std::string& text, Fail& fail) {
    if (node.min_length || node.max_length) {
      charge(text_cost(text.size()));
      std::size_t length = code_points(text);
      auto characters = [](std::size_t n) { return std::to_string(n) + (n == 1 ? " character" : " characters"); };
      if (node.min_length && length < *node.min_length)
        fail([&] { return show(json(text)) + " is shorter than " + characters(*node.min_length); });
      if (node.max_length && length > *node.max_length)
        fail([&] { return show(json(text)) + " is longer than " + characters(*node.max_length); });
    }
    if (node.pattern && !search(*node.pattern, text))
      fail([&] { return show(json(text)) + " does not match the pattern " + show(json(node.pattern->source)); });
    if (!node.format.empty()) {
      // One pass over the string; "regex" compiles it (RE2 is linear in the pattern too).
      charge(4 + text.size() / (node.format == "regex" ? 1 : 16));
      if (!format_matches(node.format, text))
        fail([&] { return show(json(text)) + " is not a valid " + show(json(node.format)) + " (format)"; });
    }
  }

  // A pattern search, charged before it runs, for its worst case: one RE2 call cannot be
  // interrupted, so what it may cost must fit in the budget before it starts. RE2's DFA
  // reads 1-2 ns a byte while its states fit its cache; when they do not (a counted
  // repetition in an unanchored pattern, as a[ab]{30}c, has 2^31 of them) it builds a
  // state at every byte or falls back to its NFA, and a byte costs up to about
  // 18 ns x (program size + 32): measured in Release, worst of strings of 100 B to 1 MB,
  // 0.8 us a byte for a[ab]{14}c (20 instructions), 1.2 us for a[ab]{30}c (36), 3.7 us for
  // a[ab]{200}c (206), 9.2 us for a[ab]{999}c and 7.6 us for a{1000}b (1005). Hence:
  // 4 for the call plus (bytes + 1) x (program size + 32) / 16, so that an evaluation
  // spent on a search is at most ~0.3 us, about ten check()s: 0.5 s for the budget of a
  // 1 MB instance. A program of up to 12 instructions has at most 2^12 DFA states,
  // which fit RE2's cache (at most ~1.3 MB of its 2.6 MB), so its DFA never gives up:
  // such a search (^[a-z]+(-[a-z]+)*$, base64, dates) is charged 1 per 16 bytes, as
  // before. The price: a pattern with a larger program (a UUID is 70 instructions, \p{L}
  // 800) is charged as if RE2 had to give up, though it rarely does on real text, so
  // large arrays of such strings may exhaust the budget; charging by measured time would
  // not, but would make the outcome depend on the machine's load.
  bool search(const Pattern& pattern, const std::string& text) {
    std::uint64_t bytes = text.size();
    charge(pattern.program_size <= kDfaSafeProgramSize ? 4 + bytes / 16
                                                       : 4 + (bytes + 1) * (pattern.program_size + 32) / 16);
    return pattern_search(*pattern.regex, text);
  }

  static std::string items(std::size_t k) { return std::to_string(k) + (k == 1 ? " item" : " items"); }

  // minItems, maxItems, uniqueItems: the array keywords that do not recurse.
  NOINLINE bool check_array_size(const Node& node, const json& array, std::vector<Violation>* out) {
    bool ok = true;
    auto fail = [&](const std::string& message) { ok = false; report(out, message); };
    std::size_t n = array.size();
    if (node.min_items && n < *node.min_items) fail("has " + items(n) + ", fewer than the minimum " + std::to_string(*node.min_items));
    if (node.max_items && n > *node.max_items) fail("has " + items(n) + ", more than the maximum " + std::to_string(*node.max_items));
    if (node.unique_items && n > 1) {
      std::unordered_map<std::string, std::size_t> seen;
      for (std::size_t i = 0; i < n; ++i) {
        std::string key;
        write_json(array[i], key, true);
        // Writing and hashing an item (a few allocations) costs several check()s: 350 ns
        // for a short string, measured.
        charge(8 + text_cost(key.size()));
        auto [it, inserted] = seen.emplace(std::move(key), i);
        if (!inserted) {
          fail("items " + std::to_string(it->second) + " and " + std::to_string(i) + " are equal, but uniqueItems is set");
          break;
        }
      }
    }
    return ok;
  }

  NOINLINE bool fail_contains(const Node& node, std::size_t matching, std::vector<Violation>* out) {
    std::size_t least = node.min_contains.value_or(1);
    bool ok = true;
    if (matching < least) {
      ok = false;
      report(out, least == 1 ? std::string("contains no item that matches \"contains\"")
                             : "contains " + items(matching) + " that match \"contains\", fewer than " + std::to_string(least));
    }
    if (node.max_contains && matching > *node.max_contains) {
      ok = false;
      report(out, "contains " + items(matching) + " that match \"contains\", more than " + std::to_string(*node.max_contains));
    }
    return ok;
  }

  bool check_array(const Node& node, const json& array, std::vector<Violation>* out, std::size_t depth,
                   Evaluated* record) {
    bool ok = true;
    std::size_t n = array.size();
    if (record) record_items(node, n, *record);
    // Only the items some schema applies to are visited: a node without "items" costs
    // nothing per item however long the array, one with it a check() (charged) per item.
    std::size_t checked = node.items ? n : std::min(n, node.prefix_items.size());
    for (std::size_t i = 0; i < checked; ++i) {
      const Node* item_schema = i < node.prefix_items.size() ? node.prefix_items[i] : node.items;
      std::size_t mark = descend(i, array[i]);
      ok = check(*item_schema, array[i], out, depth + 1) && ok;
      ascend(mark);
      if (!ok && !out) return false;
    }
    if (node.contains) {
      std::size_t matching = 0;
      for (std::size_t i = 0; i < n; ++i) {
        std::size_t mark = descend(i, array[i]);
        if (check(*node.contains, array[i], nullptr, depth + 1)) {
          ++matching;
          if (record) record->mark_item(i, n);
        }
        ascend(mark);
      }
      ok = fail_contains(node, matching, out) && ok;
    }
    if (node.min_items || node.max_items || node.unique_items) ok = check_array_size(node, array, out) && ok;
    return ok;
  }

  static void record_items(const Node& node, std::size_t n, Evaluated& record) {
    if (node.items) record.all_items = true;
    record.prefix = std::max(record.prefix, std::min(n, node.prefix_items.size()));
  }

  // minProperties, maxProperties, required, dependentRequired: no recursion.
  NOINLINE bool check_object_size(const Node& node, const json& object, std::vector<Violation>* out) {
    bool ok = true;
    auto fail = [&](const std::string& message) { ok = false; report(out, message); };
    std::size_t n = object.size();
    charge(node.required.size() + node.dependent_required.size());
    if (node.min_properties && n < *node.min_properties)
      fail("has " + std::to_string(n) + " properties, fewer than the minimum " + std::to_string(*node.min_properties));
    if (node.max_properties && n > *node.max_properties)
      fail("has " + std::to_string(n) + " properties, more than the maximum " + std::to_string(*node.max_properties));
    for (const auto& name : node.required)
      if (!object.contains(name)) fail("is missing the required property " + show(json(name)));
    for (const auto& [name, needed] : node.dependent_required)
      if (object.contains(name))
        for (const auto& other : needed)
          if (!object.contains(other)) fail("has " + show(json(name)) + " but not " + show(json(other)) + ", which it requires");
    return ok;
  }

  // An additionalProperties of false: reported at the object, naming the property.
  NOINLINE bool fail_additional(const std::string& key, std::size_t mark, std::vector<Violation>* out) {
    std::string inside = path_.substr(mark);
    path_.resize(mark);
    report(out, "has the property " + show(json(key)) + ", which is not allowed (additionalProperties)");
    path_ += inside;
    return false;
  }

  NOINLINE bool check_property_name(const Node& node, const std::string& key, std::vector<Violation>* out,
                                    std::size_t depth) {
    charge(text_cost(key.size()));  // copying it into a json string
    if (check(*node.property_names, json(key), nullptr, depth + 1)) return true;
    report(out, "has the property name " + show(json(key)) + ", which does not match \"propertyNames\"");
    return false;
  }

  bool check_object(const Node& node, const json& object, std::vector<Violation>* out, std::size_t depth,
                    Evaluated* record) {
    bool ok = true;
    if (node.min_properties || node.max_properties || !node.required.empty() || !node.dependent_required.empty())
      ok = check_object_size(node, object, out);

    // A node without these keywords does not visit the properties at all; one with them
    // pays for every property: looking it up and putting its name in the path.
    if (node.properties.empty() && node.pattern_properties.empty() && !node.additional_properties &&
        !node.property_names)
      return ok;
    if (record && node.additional_properties) record->all_properties = true;
    for (auto it = object.begin(); it != object.end(); ++it) {
      const std::string& key = it.key();
      charge(1 + text_cost(key.size()));
      bool evaluated = false;
      std::size_t mark = descend(key, *it);
      auto property = node.properties.find(key);
      if (property != node.properties.end()) {
        evaluated = true;
        ok = check(*property->second, *it, out, depth + 1) && ok;
      }
      for (const auto& [pattern, property_schema] : node.pattern_properties) {
        if (!search(pattern, key)) continue;
        evaluated = true;
        ok = check(*property_schema, *it, out, depth + 1) && ok;
      }
      if (record && evaluated) record->properties.insert(&key);
      if (!evaluated && node.additional_properties) {
        if (node.additional_properties->constant == false)
          ok = fail_additional(key, mark, out);
        else
          ok = check(*node.additional_properties, *it, out, depth + 1) && ok;
      }
      ascend(mark);
      if (node.property_names) ok = check_property_name(node, key, out, depth) && ok;
      if (!ok && !out) return false;
    }
    return ok;
  }

  std::size_t max_;
  std::string path_;        // the JSON Pointer of the value being checked
  std::size_t levels_ = 0;  // how many items and properties deep that value is
  const json& instance_;    // the whole of it, measured when the base budget is spent
  std::uint64_t spent_ = 0;
  std::uint64_t limit_ = kEvaluationBudgetBase;
  std::uint64_t size_ = 0;  // json_cost(instance_), once scaled_
  bool scaled_ = false;
  const bool tracks_scope_;
  std::vector<std::uint32_t> scope_;  // the dynamic scope: resources entered, outermost first
  Evaluated* collect_ = nullptr;      // gathers what is evaluated of the current value, when asked
  std::vector<bool> named_;           // violations already named by a reference
};

std::vector<Violation> Schema::validate(const json& instance, std::size_t max_violations) const {
  std::vector<Violation> violations;
  Validator(*this, instance, max_violations == 0 ? 1 : max_violations).check(*root_, instance, &violations, 0);
  return violations;
}

bool Schema::is_valid(const json& instance) const {
  return Validator(*this, instance, 1).check(*root_, instance, nullptr, 0);
}

std::string describe(const Violation& violation) {
  return (violation.path.empty() ? std::string("(root)") : violation.path) + ": " + violation.message;
}

std::string describe(const std::vector<Violation>& violations, std::size_t shown) {
  std::string out;
  for (std::size_t i = 0; i < violations.size() && i < shown; ++i) out += (i ? "; " : "") + describe(violations[i]);
  if (violations.size() > shown) out += "; and " + std::to_string(violations.size() - shown) + " more";
  return out;
}

}  // namespace orch::schema
