#include "core/workflow/workflow_graph.hpp"

#include <algorithm>
#include <unordered_map>

#include "core/common/user_error.hpp"

namespace orch::workflow {
namespace {

std::string join(const std::vector<std::string>& ids, const std::string& separator) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : separator) + id;
  return out;
}

}  // namespace

void check_workflow_graph(const std::vector<GraphNode>& nodes) {
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < nodes.size(); ++i) index.emplace(nodes[i].id, i);
  std::vector<std::vector<std::size_t>> dependencies(nodes.size()), dependents(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i)
    for (const auto& dep : nodes[i].depends_on) {
      std::size_t d = index.at(dep);
      dependencies[i].push_back(d);
      dependents[d].push_back(i);
    }

  // Kahn's algorithm: a node is placed once all its dependencies are; the nodes never
  // placed are on a cycle or behind one.
  std::vector<std::size_t> waiting(nodes.size()), order;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    waiting[i] = dependencies[i].size();
    if (waiting[i] == 0) order.push_back(i);
  }
  for (std::size_t next = 0; next < order.size(); ++next)
    for (std::size_t dependent : dependents[order[next]])
      if (--waiting[dependent] == 0) order.push_back(dependent);

  if (order.size() < nodes.size()) {
    // Every node left waits for another one left. From the first of them by id, follow a
    // dependency that is left until a node repeats: from there on it is a cycle.
    std::size_t at = nodes.size();
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (waiting[i] > 0 && (at == nodes.size() || nodes[i].id < nodes[at].id)) at = i;
    std::vector<std::size_t> walk;
    std::vector<std::size_t> seen_at(nodes.size(), nodes.size());
    while (seen_at[at] == nodes.size()) {
      seen_at[at] = walk.size();
      walk.push_back(at);
      at = *std::find_if(dependencies[at].begin(), dependencies[at].end(),
                         [&](std::size_t d) { return waiting[d] > 0; });
    }
    // The walk went against the edges; read it forwards, each node after the one before.
    std::vector<std::string> cycle{nodes[at].id};
    for (std::size_t i = walk.size(); i-- > seen_at[at];) cycle.push_back(nodes[walk[i]].id);
    throw UserError("invalid workflow spec: the nodes " + join(cycle, " -> ") +
                        " form a cycle (each runs after the one before it)",
                    {}, "A workflow is a DAG: remove one of these depends_on entries.");
  }

  // A template may read only outputs that exist when its node runs: those upstream. The
  // first offence by node id, then by reference, is the one reported.
  std::vector<std::size_t> by_id(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) by_id[i] = i;
  std::sort(by_id.begin(), by_id.end(), [&](std::size_t a, std::size_t b) { return nodes[a].id < nodes[b].id; });
  std::vector<std::size_t> visited_by(nodes.size(), nodes.size());
  for (std::size_t i : by_id) {
    std::vector<std::string> refs = nodes[i].refs;
    std::sort(refs.begin(), refs.end());
    bool ancestors_marked = false;
    for (const auto& ref : refs) {
      const auto& direct = nodes[i].depends_on;
      if (std::find(direct.begin(), direct.end(), ref) != direct.end()) continue;
      if (!ancestors_marked) {  // one walk up from the node marks all its ancestors
        std::vector<std::size_t> stack(dependencies[i]);
        while (!stack.empty()) {
          std::size_t up = stack.back();
          stack.pop_back();
          if (visited_by[up] == i) continue;
          visited_by[up] = i;
          stack.insert(stack.end(), dependencies[up].begin(), dependencies[up].end());
        }
        ancestors_marked = true;
      }
      if (visited_by[index.at(ref)] != i) {
        const std::string& id = nodes[i].id;
        throw UserError("invalid workflow spec: node \"" + id + "\" uses {{ nodes." + ref + ".output }}, but \"" +
                            ref + "\" is not upstream of \"" + id + "\"",
                        {},
                        "Add \"" + ref + "\" to the depends_on of \"" + id + "\" (or of a node it depends on), so that its "
                            "output exists when \"" + id + "\" runs.");
      }
    }
  }
}

}  // namespace orch::workflow
