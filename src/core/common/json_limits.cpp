#include "core/common/json_limits.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/common/user_error.hpp"

namespace orch {

using json = nlohmann::json;

namespace {

// One open array or object on an explicit stack: the walks below never recurse.
struct Frame {
  const json* node;
  json::const_iterator it;  // the child being visited
  std::size_t index = 0;    // its position, for array pointers
  bool started = false;     // `it` is at a child already visited (advance before use)
};

// The pointer of the child each frame is visiting: the path to the current position.
std::string pointer_of(const std::vector<Frame>& stack) {
  std::string pointer;
  for (const Frame& frame : stack) {
    pointer += '/';
    pointer += frame.node->is_object() ? json_pointer_token(frame.it.key()) : std::to_string(frame.index);
  }
  return pointer;
}

// Moves `frame` to its next child; false when there is none.
bool advance(Frame& frame) {
  if (frame.started) {
    ++frame.it;
    ++frame.index;
  } else {
    frame.started = true;
  }
  return frame.it != frame.node->cend();
}

bool is_container(const json& value) { return value.is_array() || value.is_object(); }

// Visits every value below `root` depth first, with an explicit stack: visit(stack, child)
// sees the frames from the root to child's parent (pointer_of(stack) is child's pointer)
// and returns false to end the walk. Containers are entered after their visit.
template <typename Visit>
void walk(const json& root, Visit visit) {
  if (!is_container(root)) return;
  std::vector<Frame> stack;
  stack.push_back({&root, root.cbegin()});
  while (!stack.empty()) {
    Frame& frame = stack.back();
    if (!advance(frame)) {
      stack.pop_back();
      continue;
    }
    const json& child = *frame.it;
    if (!visit(stack, child)) return;
    if (is_container(child)) stack.push_back({&child, child.cbegin()});
  }
}

}  // namespace

std::string json_pointer_token(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string show_pointer(std::string_view pointer) {
  constexpr std::size_t kMax = 200, kHead = 100, kTail = 80;
  std::string_view head = pointer, tail;
  bool cut = pointer.size() > kMax;
  if (cut) {
    // Cut at token boundaries where there are some: "/a/b/.../y/z".
    head = pointer.substr(0, kHead);
    if (auto slash = head.rfind('/'); slash != std::string_view::npos && slash > 0) head = head.substr(0, slash);
    tail = pointer.substr(pointer.size() - kTail);
    if (auto slash = tail.find('/'); slash != std::string_view::npos) tail = tail.substr(slash);
    else tail = tail.substr(0, 0);
  }
  auto append = [](std::string& out, std::string_view part) {
    for (char c : part) {
      if (static_cast<unsigned char>(c) < 0x20) {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(c));
        out += buffer;
      } else {
        out += c;
      }
    }
  };
  std::string out;
  append(out, head);
  if (cut) {
    out += "/...";
    append(out, tail);
  }
  return out;
}

json parse_json_limited(std::string_view text, std::size_t max_depth) {
  // The scan agrees with nlohmann's lexer on where strings begin and end ("..." with
  // backslash escapes) for every prefix nlohmann accepts, so nlohmann never builds a
  // level the scan did not count. Malformed text is left for nlohmann to report.
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        throw UserError("JSON nested deeper than " + std::to_string(max_depth) + " levels (at byte " +
                            std::to_string(i + 1) + ")",
                        {}, {}, sqlstate::program_limit_exceeded);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::out_of_range&) {
    // jsonb numbers have no range limit; a double does (1e400 is valid jsonb).
    throw UserError("a JSON number is too large", {}, "Numbers must fit a double precision value (at most about 1.8e308).",
                    sqlstate::program_limit_exceeded);
  } catch (const json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, ...": the bracketed
    // identifier means nothing to a user.
    std::string message = e.what();
    if (auto close = message.find("] "); message.rfind("[json.exception.", 0) == 0 && close != std::string::npos)
      message.erase(0, close + 2);
    throw UserError("invalid JSON: " + message, {}, {}, sqlstate::invalid_text_representation);
  }
}

std::optional<std::string> find_too_deep(const json& value, std::size_t max_depth) {
  if (!is_container(value)) return std::nullopt;
  if (max_depth == 0) return std::string();
  std::optional<std::string> found;
  walk(value, [&](const std::vector<Frame>& stack, const json& child) {
    // `child` is stack.size() + 1 levels deep.
    if (is_container(child) && stack.size() + 1 > max_depth) found = pointer_of(stack);
    return !found;
  });
  return found;
}

std::size_t json_depth(const json& value, std::size_t stop_at) {
  if (!is_container(value) || stop_at == 0) return 0;
  std::size_t deepest = 1;
  walk(value, [&](const std::vector<Frame>& stack, const json& child) {
    if (is_container(child)) deepest = std::max(deepest, stack.size() + 1);
    return deepest < stop_at;
  });
  return deepest;
}

void check_storable_in_jsonb(const json& doc) {
  auto has_nul = [](const std::string& text) { return std::memchr(text.data(), 0, text.size()) != nullptr; };
  auto refuse = [](const std::string& what, const std::string& pointer) {
    throw UserError(what + " at " + (pointer.empty() ? std::string("the root") : show_pointer(pointer)) +
                        " contains the character U+0000, which PostgreSQL's jsonb cannot store",
                    {}, "Remove the character, or encode the value (for example in base64).",
                    sqlstate::untranslatable_character);
  };
  if (doc.is_string()) {
    if (has_nul(doc.get_ref<const std::string&>())) refuse("string", "");
    return;
  }
  walk(doc, [&](const std::vector<Frame>& stack, const json& child) {
    const Frame& frame = stack.back();
    if (frame.node->is_object() && has_nul(frame.it.key())) {
      // The key's own pointer would show it; name the object it is in and the key itself.
      std::string pointer = pointer_of(stack);
      pointer.resize(pointer.rfind('/'));
      std::string key = json(frame.it.key()).dump(-1, ' ', false, json::error_handler_t::replace);
      refuse("key " + show_pointer(key.size() > 60 ? key.substr(0, 56) + "...\"" : key) + " in the object",
             pointer);
    }
    if (child.is_string() && has_nul(child.get_ref<const std::string&>())) refuse("string", pointer_of(stack));
    return true;
  });
}

}  // namespace orch
