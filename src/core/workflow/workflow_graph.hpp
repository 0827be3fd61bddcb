// The graph checks of a workflow spec, in time linear in its nodes and edges: a DAG
// (a cycle is named, node by node) and template references only to upstream nodes.
// Levels (topological depths, which the scheduler dispatches by) are computed in SQL
// alone, by store_workflow_nodes (extension/60_workflows.sql), not here.
#pragma once

#include <string>
#include <vector>

namespace orch::workflow {

struct GraphNode {
  std::string id;
  std::vector<std::string> depends_on;  // ids of nodes in the same graph
  std::vector<std::string> refs;        // nodes whose output its templates read
};

// Throws UserError on a cycle ("the nodes a -> b -> a form a cycle", each running after
// the one before it) or on a reference to a node that is not upstream. depends_on and
// refs must name nodes of the graph (normalize_workflow_spec checks that).
void check_workflow_graph(const std::vector<GraphNode>& nodes);

}  // namespace orch::workflow
