#include "core/schema/json_schema.hpp"

#include <cstdint>
#include <limits>

#include <cmath>
#include <set>
#include <unordered_map>
#include <functional>
#include <unordered_set>

#include "core/common/spec_reader.hpp"
#include "core/common/user_error.hpp"

namespace orch::schema {

// ---------------------------------------------------------------------------------------
// The compiled form: one Node per (sub)schema, every keyword already checked and parsed.

enum TypeBit : unsigned {
  kNull = 1, kBoolean = 2, kObject = 4, kArray = 8, kNumber = 16, kString = 32, kInteger = 64
};

struct Pattern {
  std::string source;
  std::regex regex;
};

struct Schema::Node {
  std::optional<bool> constant;  // a boolean schema: true accepts all, false nothing
  unsigned types = 0;            // 0: any type
  std::optional<json> const_value;
  std::optional<std::vector<json>> enum_values;
  std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum, multiple_of;
  std::optional<std::size_t> min_length, max_length, min_items, max_items, min_contains,
      max_contains, min_properties, max_properties;
  std::optional<Pattern> pattern;
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
  std::string location;  // where in the schema document, for $ref loop messages
};

namespace {

using Node = Schema::Node;

std::string show(const json& value) {
  std::string text = value.dump();
  if (text.size() <= 60) return text;
  return value.is_string() ? text.substr(0, 40) + "...\"" : std::string("a long ") + json_type_name(value);
}

std::string escape_token(const std::string& token) {
  std::string out;
  for (char c : token) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
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

bool is_integral(const json& value) {
  if (value.is_number_integer()) return true;
  if (!value.is_number_float()) return false;
  double d = value.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

std::size_t code_points(const std::string& text) {
  std::size_t n = 0;
  for (unsigned char c : text)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

// A canonical text of a value for uniqueItems: numbers equal in value print the same
// (1 and 1.0), object keys are sorted (nlohmann keeps them sorted).
void canonical(const json& value, std::string& out) {
  if (value.is_number()) {
    if (is_integral(value) && std::fabs(value.get<double>()) < 9.007199254740992e15)
      out += std::to_string(static_cast<long long>(value.get<double>()));
    else
      out += value.dump();
  } else if (value.is_array()) {
    out += '[';
    for (const auto& item : value) { canonical(item, out); out += ','; }
    out += ']';
  } else if (value.is_object()) {
    out += '{';
    for (auto it = value.begin(); it != value.end(); ++it) {
      out += json(it.key()).dump();
      out += ':';
      canonical(*it, out);
      out += ',';
    }
    out += '}';
  } else {
    out += value.dump();
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Compiling: every keyword is checked for its type and range; $refs are resolved inside
// the document; the same location is compiled once, which also makes recursive schemas
// (a tree whose nodes $ref the tree) finite.

class Compiler {
 public:
  explicit Compiler(const json& document) : document_(document), schema_(new Schema()) {}

  std::shared_ptr<const Schema> run() {
    schema_->root_ = compile(document_, "");
    check_ref_loops();
    return std::shared_ptr<const Schema>(schema_.release());
  }

 private:
  [[noreturn]] void fail(const std::string& location, const std::string& problem) {
    throw UserError("invalid JSON Schema at " + (location.empty() ? std::string("the root") : location) +
                    ": " + problem);
  }

  const Node* compile(const json& schema, const std::string& location) {
    auto known = by_location_.find(location);
    if (known != by_location_.end()) return known->second;
    Node& node = schema_->nodes_.emplace_back();
    node.location = location;
    by_location_[location] = &node;
    if (schema.is_boolean()) {
      node.constant = schema.get<bool>();
      return &node;
    }
    if (!schema.is_object())
      fail(location, std::string("a schema must be an object or a boolean, not ") + json_type_name(schema));
    fill(node, schema, location);
    return &node;
  }

  const Node* sub(const json& schema, const std::string& location, const char* key) {
    return compile(schema.at(key), location + "/" + key);
  }

  std::size_t count(const json& value, const std::string& location) {
    if (!value.is_number() || !is_integral(value) || value.get<double>() < 0)
      fail(location, "must be a non-negative integer, not " + show(value));
    // Counts beyond size_t (1e300 is a valid integer in JSON) mean "more than anything can
    // have": converting them would be undefined behaviour (found by the fuzzer).
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.get<double>() >= 18446744073709551615.0) return std::numeric_limits<std::size_t>::max();
    return static_cast<std::size_t>(value.get<double>());
  }

  double number(const json& value, const std::string& location) {
    if (!value.is_number()) fail(location, std::string("must be a number, not ") + json_type_name(value));
    return value.get<double>();
  }

  Pattern pattern(const json& value, const std::string& location) {
    if (!value.is_string()) fail(location, std::string("must be a regular expression string, not ") + json_type_name(value));
    try {
      return Pattern{value.get<std::string>(), std::regex(value.get<std::string>(), std::regex::ECMAScript)};
    } catch (const std::regex_error& e) {
      fail(location, "\"" + value.get<std::string>() + "\" is not a regular expression std::regex accepts (" + e.what() + ")");
    }
  }

  std::vector<const Node*> schema_list(const json& schema, const std::string& location, const char* key) {
    const json& list = schema.at(key);
    std::string where = location + "/" + key;
    if (!list.is_array() || list.empty()) fail(where, "must be a non-empty array of schemas");
    std::vector<const Node*> out;
    for (std::size_t i = 0; i < list.size(); ++i) out.push_back(compile(list[i], where + "/" + std::to_string(i)));
    return out;
  }

  std::map<std::string, const Node*> schema_map(const json& schema, const std::string& location, const char* key) {
    const json& map = schema.at(key);
    std::string where = location + "/" + key;
    if (!map.is_object()) fail(where, "must be an object of schemas");
    std::map<std::string, const Node*> out;
    for (auto it = map.begin(); it != map.end(); ++it)
      out[it.key()] = compile(*it, where + "/" + escape_token(it.key()));
    return out;
  }

  unsigned type_bit(const json& name, const std::string& location) {
    static const std::map<std::string, unsigned> bits = {
        {"null", kNull}, {"boolean", kBoolean}, {"object", kObject}, {"array", kArray},
        {"number", kNumber}, {"string", kString}, {"integer", kInteger}};
    if (name.is_string()) {
      auto it = bits.find(name.get<std::string>());
      if (it != bits.end()) return it->second;
    }
    fail(location, show(name) + " is not a type (null, boolean, object, array, number, string, integer)");
  }

  const Node* resolve(const std::string& ref, const std::string& location) {
    if (ref.empty() || ref[0] != '#')
      fail(location, "\"" + ref + "\" is not a local reference; only \"#\" and \"#/...\" references are supported");
    if (ref.size() > 1 && ref[1] != '/')
      fail(location, "\"" + ref + "\": anchors are not supported; use a JSON Pointer such as \"#/$defs/name\"");
    // Undo the URI %-encoding, then walk the JSON Pointer.
    std::string pointer;
    for (std::size_t i = 1; i < ref.size(); ++i) {
      if (ref[i] == '%' && i + 2 < ref.size() && std::isxdigit(static_cast<unsigned char>(ref[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(ref[i + 2]))) {
        pointer += static_cast<char>(std::stoi(ref.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        pointer += ref[i];
      }
    }
    const json* target = &document_;
    std::string walked;
    std::size_t start = 1;
    while (!pointer.empty() && start <= pointer.size()) {
      std::size_t slash = pointer.find('/', start);
      std::string token = pointer.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      std::string unescaped;
      for (std::size_t i = 0; i < token.size(); ++i) {
        if (token[i] == '~' && i + 1 < token.size() && (token[i + 1] == '0' || token[i + 1] == '1')) {
          unescaped += token[i + 1] == '0' ? '~' : '/';
          ++i;
        } else {
          unescaped += token[i];
        }
      }
      if (target->is_object() && target->contains(unescaped)) {
        target = &(*target)[unescaped];
      } else if (target->is_array() && !unescaped.empty() &&
                 unescaped.find_first_not_of("0123456789") == std::string::npos &&
                 unescaped.size() < 10 && std::stoul(unescaped) < target->size()) {
        target = &(*target)[std::stoul(unescaped)];
      } else {
        fail(location, "$ref \"" + ref + "\" does not resolve: nothing at \"" + walked + "/" + token + "\"");
      }
      walked += "/" + token;
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return compile(*target, walked);
  }

  void fill(Node& node, const json& schema, const std::string& at) {
    auto where = [&](const char* key) { return at + "/" + key; };
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
    }
    if (schema.contains("const")) node.const_value = schema["const"];

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

    if (schema.contains("prefixItems")) node.prefix_items = schema_list(schema, at, "prefixItems");
    if (schema.contains("items")) node.items = sub(schema, at, "items");
    if (schema.contains("contains")) node.contains = sub(schema, at, "contains");
    if (schema.contains("uniqueItems")) {
      if (!schema["uniqueItems"].is_boolean()) fail(where("uniqueItems"), "must be true or false");
      node.unique_items = schema["uniqueItems"].get<bool>();
    }

    if (schema.contains("properties")) node.properties = schema_map(schema, at, "properties");
    if (schema.contains("patternProperties")) {
      const json& map = schema["patternProperties"];
      if (!map.is_object()) fail(where("patternProperties"), "must be an object of schemas");
      for (auto it = map.begin(); it != map.end(); ++it) {
        std::string key_at = where("patternProperties") + "/" + escape_token(it.key());
        node.pattern_properties.emplace_back(pattern(json(it.key()), key_at), compile(*it, key_at));
      }
    }
    if (schema.contains("additionalProperties")) node.additional_properties = sub(schema, at, "additionalProperties");
    if (schema.contains("propertyNames")) node.property_names = sub(schema, at, "propertyNames");
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
        if (!it->is_array()) fail(where("dependentRequired") + "/" + escape_token(it.key()), "must be an array of property names");
        for (const auto& name : *it) {
          if (!name.is_string()) fail(where("dependentRequired") + "/" + escape_token(it.key()), "must list strings");
          node.dependent_required[it.key()].push_back(name.get<std::string>());
        }
      }
    }
    if (schema.contains("dependentSchemas")) node.dependent_schemas = schema_map(schema, at, "dependentSchemas");

    if (schema.contains("allOf")) node.all_of = schema_list(schema, at, "allOf");
    if (schema.contains("anyOf")) node.any_of = schema_list(schema, at, "anyOf");
    if (schema.contains("oneOf")) node.one_of = schema_list(schema, at, "oneOf");
    if (schema.contains("not")) node.not_schema = sub(schema, at, "not");
    if (schema.contains("if")) node.if_schema = sub(schema, at, "if");
    if (schema.contains("then")) node.then_schema = sub(schema, at, "then");
    if (schema.contains("else")) node.else_schema = sub(schema, at, "else");
    if (schema.contains("$defs")) schema_map(schema, at, "$defs");  // checked, compiled on use
    if (schema.contains("format") && !schema["format"].is_string()) fail(where("format"), "must be a string");
    if (schema.contains("$ref")) {
      if (!schema["$ref"].is_string()) fail(where("$ref"), "must be a string");
      node.ref = resolve(schema["$ref"].get<std::string>(), where("$ref"));
    }
  }

  // Edges that apply another schema to the same value. A cycle of them ($ref to itself,
  // directly or through allOf/anyOf/...) would recurse for ever on any value: refuse it.
  void check_ref_loops() {
    enum Mark { kVisiting = 1, kDone = 2 };
    std::unordered_map<const Node*, int> marks;
    std::vector<const Node*> stack;
    std::function<void(const Node*)> visit = [&](const Node* node) {
      int& mark = marks[node];
      if (mark == kDone) return;
      if (mark == kVisiting) {
        std::string loop;
        bool in = false;
        for (const Node* n : stack) {
          if (n == node) in = true;
          if (in) loop += (n->location.empty() ? "#" : "#" + n->location) + " -> ";
        }
        fail(node->location, "$ref loop " + loop + (node->location.empty() ? "#" : "#" + node->location) +
                                 " applies schemas to the same value for ever");
      }
      mark = kVisiting;
      stack.push_back(node);
      std::vector<const Node*> next(node->all_of);
      next.insert(next.end(), node->any_of.begin(), node->any_of.end());
      next.insert(next.end(), node->one_of.begin(), node->one_of.end());
      for (const Node* n : {node->ref, node->not_schema, node->if_schema, node->then_schema, node->else_schema})
        if (n) next.push_back(n);
      for (const auto& entry : node->dependent_schemas) next.push_back(entry.second);
      for (const Node* n : next) visit(n);
      stack.pop_back();
      marks[node] = kDone;
    };
    for (const Node& node : schema_->nodes_) visit(&node);
  }

  const json& document_;
  std::unique_ptr<Schema> schema_;
  std::unordered_map<std::string, const Node*> by_location_;
};

std::shared_ptr<const Schema> Schema::compile(const json& schema) { return Compiler(schema).run(); }

// ---------------------------------------------------------------------------------------
// Validating. check() returns whether `value` satisfies `node`; when `out` is given it also
// records why not. Subschemas whose failure is summarised (anyOf, oneOf, not, if,
// contains) are checked without recording.

namespace {

class Validator {
 public:
  explicit Validator(std::size_t max_violations) : max_(max_violations) {}

  bool check(const Node& node, const json& value, std::vector<Violation>* out, int depth) {
    if (depth > kMaxDepth)
      throw UserError("JSON Schema validation nested deeper than " + std::to_string(kMaxDepth) +
                      " levels (at " + (path_.empty() ? std::string("the root") : path_) + ")");
    if (node.constant) {
      if (!*node.constant) report(out, "no value is allowed here (the schema is false)");
      return *node.constant;
    }
    bool ok = true;
    auto fail = [&](const std::string& message) { ok = false; report(out, message); };

    if (node.types && !matches_type(node.types, value)) {
      std::string expected;
      for (unsigned bit = 1; bit <= kInteger; bit <<= 1)
        if (node.types & bit) expected += (expected.empty() ? "\"" : " or \"") + type_name(bit) + "\"";
      fail(show(value) + " is not of type " + expected);
      return false;  // the other keywords' messages would only repeat this one
    }
    if (node.const_value && !(*node.const_value == value)) fail(show(value) + " is not " + show(*node.const_value));
    if (node.enum_values) {
      bool found = false;
      for (const auto& candidate : *node.enum_values)
        if (candidate == value) { found = true; break; }
      if (!found) fail(show(value) + " is not one of " + show(json(*node.enum_values)));
    }
    if (value.is_number()) check_number(node, value, fail);
    if (value.is_string()) check_string(node, value.get_ref<const std::string&>(), fail);
    if (value.is_array()) ok = check_array(node, value, out, depth, fail) && ok;
    if (value.is_object()) ok = check_object(node, value, out, depth, fail) && ok;

    for (const Node* part : node.all_of) ok = check(*part, value, out, depth + 1) && ok;
    if (!node.any_of.empty()) {
      bool any = false;
      for (const Node* part : node.any_of)
        if (check(*part, value, nullptr, depth + 1)) { any = true; break; }
      if (!any) fail("does not match any of the " + std::to_string(node.any_of.size()) + " schemas in anyOf");
    }
    if (!node.one_of.empty()) {
      std::vector<std::size_t> matched;
      for (std::size_t i = 0; i < node.one_of.size() && matched.size() < 2; ++i)
        if (check(*node.one_of[i], value, nullptr, depth + 1)) matched.push_back(i);
      if (matched.empty())
        fail("does not match any of the " + std::to_string(node.one_of.size()) + " schemas in oneOf");
      else if (matched.size() > 1)
        fail("matches oneOf schemas " + std::to_string(matched[0]) + " and " + std::to_string(matched[1]) +
             "; exactly one must match");
    }
    if (node.not_schema && check(*node.not_schema, value, nullptr, depth + 1))
      fail("must not match the schema in \"not\"");
    if (node.if_schema) {
      bool condition = check(*node.if_schema, value, nullptr, depth + 1);
      const Node* branch = condition ? node.then_schema : node.else_schema;
      if (branch) ok = check(*branch, value, out, depth + 1) && ok;
    }
    if (node.ref) ok = check(*node.ref, value, out, depth + 1) && ok;
    return ok;
  }

 private:
  void report(std::vector<Violation>* out, const std::string& message) {
    if (out && out->size() < max_) out->push_back({path_, message});
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

  template <typename Fail>
  static void check_number(const Node& node, const json& value, Fail& fail) {
    double x = value.get<double>();
    std::string shown = show(value);
    auto num = [](double d) { return json(d).dump(); };
    if (node.minimum && x < *node.minimum) fail(shown + " is less than the minimum " + num(*node.minimum));
    if (node.maximum && x > *node.maximum) fail(shown + " is greater than the maximum " + num(*node.maximum));
    if (node.exclusive_minimum && x <= *node.exclusive_minimum)
      fail(shown + " is not greater than " + num(*node.exclusive_minimum));
    if (node.exclusive_maximum && x >= *node.exclusive_maximum)
      fail(shown + " is not less than " + num(*node.exclusive_maximum));
    if (node.multiple_of) {
      double q = x / *node.multiple_of;
      bool multiple = std::isfinite(q) && std::fabs(q - std::round(q)) <= 1e-9 * std::max(1.0, std::fabs(q));
      if (!multiple) fail(shown + " is not a multiple of " + num(*node.multiple_of));
    }
  }

  template <typename Fail>
  static void check_string(const Node& node, const std::string& text, Fail& fail) {
    if (node.min_length || node.max_length) {
      std::size_t length = code_points(text);
      auto characters = [](std::size_t n) { return std::to_string(n) + (n == 1 ? " character" : " characters"); };
      if (node.min_length && length < *node.min_length)
        fail(show(json(text)) + " is shorter than " + characters(*node.min_length));
      if (node.max_length && length > *node.max_length)
        fail(show(json(text)) + " is longer than " + characters(*node.max_length));
    }
    if (node.pattern) {
      if (text.size() > kMaxPatternSubject)
        fail("a string of " + std::to_string(text.size()) + " bytes is too long to match against a pattern (at most " +
             std::to_string(kMaxPatternSubject) + ")");
      else if (!std::regex_search(text, node.pattern->regex))
        fail(show(json(text)) + " does not match the pattern \"" + node.pattern->source + "\"");
    }
  }

  template <typename Fail>
  bool check_array(const Node& node, const json& array, std::vector<Violation>* out, int depth, Fail& fail) {
    bool ok = true;
    std::size_t n = array.size();
    auto items = [](std::size_t k) { return std::to_string(k) + (k == 1 ? " item" : " items"); };
    if (node.min_items && n < *node.min_items) fail("has " + items(n) + ", fewer than the minimum " + std::to_string(*node.min_items));
    if (node.max_items && n > *node.max_items) fail("has " + items(n) + ", more than the maximum " + std::to_string(*node.max_items));
    for (std::size_t i = 0; i < n; ++i) {
      const Node* item_schema = i < node.prefix_items.size() ? node.prefix_items[i] : node.items;
      if (!item_schema) continue;
      std::size_t mark = path_.size();
      path_ += "/" + std::to_string(i);
      ok = check(*item_schema, array[i], out, depth + 1) && ok;
      path_.resize(mark);
      if (!ok && !out) return false;
    }
    if (node.contains) {
      std::size_t matching = 0;
      for (std::size_t i = 0; i < n; ++i) {
        std::size_t mark = path_.size();
        path_ += "/" + std::to_string(i);
        if (check(*node.contains, array[i], nullptr, depth + 1)) ++matching;
        path_.resize(mark);
      }
      std::size_t least = node.min_contains.value_or(1);
      if (matching < least)
        fail(least == 1 ? std::string("contains no item that matches \"contains\"")
                        : "contains " + items(matching) + " that match \"contains\", fewer than " + std::to_string(least));
      if (node.max_contains && matching > *node.max_contains)
        fail("contains " + items(matching) + " that match \"contains\", more than " + std::to_string(*node.max_contains));
    }
    if (node.unique_items && n > 1) {
      std::unordered_map<std::string, std::size_t> seen;
      for (std::size_t i = 0; i < n; ++i) {
        std::string key;
        canonical(array[i], key);
        auto [it, inserted] = seen.emplace(std::move(key), i);
        if (!inserted) {
          fail("items " + std::to_string(it->second) + " and " + std::to_string(i) + " are equal, but uniqueItems is set");
          break;
        }
      }
    }
    return ok;
  }

  template <typename Fail>
  bool check_object(const Node& node, const json& object, std::vector<Violation>* out, int depth, Fail& fail) {
    bool ok = true;
    std::size_t n = object.size();
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
    for (const auto& [name, dependent] : node.dependent_schemas)
      if (object.contains(name)) ok = check(*dependent, object, out, depth + 1) && ok;

    for (auto it = object.begin(); it != object.end(); ++it) {
      const std::string& key = it.key();
      bool evaluated = false;
      std::size_t mark = path_.size();
      path_ += "/" + escape_token(key);
      auto property = node.properties.find(key);
      if (property != node.properties.end()) {
        evaluated = true;
        ok = check(*property->second, *it, out, depth + 1) && ok;
      }
      for (const auto& [pattern, property_schema] : node.pattern_properties) {
        if (key.size() > kMaxPatternSubject || !std::regex_search(key, pattern.regex)) continue;
        evaluated = true;
        ok = check(*property_schema, *it, out, depth + 1) && ok;
      }
      if (!evaluated && node.additional_properties) {
        if (node.additional_properties->constant == false) {
          path_.resize(mark);
          fail("has the property " + show(json(key)) + ", which is not allowed (additionalProperties)");
          path_ += "/" + escape_token(key);
        } else {
          ok = check(*node.additional_properties, *it, out, depth + 1) && ok;
        }
      }
      path_.resize(mark);
      if (node.property_names && !check(*node.property_names, json(key), nullptr, depth + 1))
        fail("has the property name " + show(json(key)) + ", which does not match \"propertyNames\"");
      if (!ok && !out) return false;
    }
    return ok;
  }

  std::size_t max_;
  std::string path_;
};

}  // namespace

std::vector<Violation> Schema::validate(const json& instance, std::size_t max_violations) const {
  std::vector<Violation> violations;
  Validator(max_violations == 0 ? 1 : max_violations).check(*root_, instance, &violations, 0);
  return violations;
}

bool Schema::is_valid(const json& instance) const {
  return Validator(1).check(*root_, instance, nullptr, 0);
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
