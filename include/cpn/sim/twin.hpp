// The digital twin's conditions and load model. Faults injected through
// /v1/sim/faults change what the twin says: nodes and sites down, links
// degraded (less bandwidth, more latency), load surging on a deployment.
// The sim compute driver fails instances on what is down, the solver plans
// on what is left, and the load model turns offered load and running
// capacity into utilisation, latency and throughput per component and flow.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cpn/core/document.hpp"
#include "cpn/engine/engine.hpp"

namespace cpn::sim {

inline constexpr const char* kFault = "sim-fault";

struct LinkCondition {
  std::optional<double> bandwidth_mbps;  // the link's capacity while degraded
  double extra_latency_ms = 0;
  std::string fault;                     // the fault that degrades it
};

struct Conditions {
  std::set<std::string> nodes_down, sites_down;
  std::map<std::string, LinkCondition> links;  // by link id
  std::map<std::string, double> surge;         // offered-load factor by deployment id
  std::map<std::string, std::string> surge_fault;

  // A fault holds the node, or its site, down.
  bool faulted(const std::string& node, const std::string& site) const {
    return nodes_down.count(node) > 0 || sites_down.count(site) > 0;
  }
  // Not marked down in the inventory, and no fault on it.
  bool node_up(const engine::Engine& engine, const std::string& node) const;
};

// What the active faults say now (several on one target combine: the
// lowest bandwidth, the latencies added, the factors multiplied).
Conditions conditions_of(const engine::Engine& engine);

// The twin's reading of a deployment under its offered load:
// {components: {name: {offered, capacity, utilization, served, dropped,
// latency_ms, saturated, instances: {running, total}}}, network: [{from,
// to, path, links, reserved_mbps, offered_mbps, delivered_mbps, latency_ms,
// degraded_by?}], end_to_end: {latency_ms, slo_ms, slo_met}, surge}.
// `running` gives each instance id's state; link_allocated is what all
// deployments hold on each link (a degraded link is shared in proportion).
Json model_load(const Json& tmpl, const std::map<std::string, std::string>& instance_states, double surge,
                const Conditions& conditions, const std::map<std::string, double>& link_allocated,
                const std::string& deployment_id);

}  // namespace cpn::sim
