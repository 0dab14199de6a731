// Deployment templates (DeploymentTemplate): everything the orchestrator
// needs to carry out a service, nothing it must look up elsewhere:
// components with their image variant per node, model version, placements
// and requests; bandwidth reservations along routes; policies with their
// parameters evaluated; billing. A confirmed order's solution becomes one,
// or a client submits one directly. What a template holds (cpu, memory and
// accelerators per node, bandwidth per link) is its reservation.
#pragma once

#include <map>

#include "cpn/artifacts/artifacts.hpp"
#include "cpn/engine/engine.hpp"

namespace cpn::templates {

inline constexpr const char* kDeployment = "deployment";

// The template of a confirmed order: its solution, its demand's evaluated
// policies and SLO, its quote. models: component -> model name.
Json from_order(const Json& order, const Json& solution, const std::map<std::string, std::string>& models,
                const artifacts::Images& images, const std::string& deployment);

// What one submitted template may hold (config `deployments`).
struct Limits {
  int max_instances = 256;               // over all its placements
  int max_instances_per_placement = 64;
  double min_cpu = 0.01;                 // per instance: a zero-size one would never be refused
  double min_memory_gib = 1.0 / 1024;
};

// Checks a submitted template: the schema, then what a schema cannot say
// (unique component names, network ends that name components, routes that
// join their sites over existing links, nodes and sites that exist and
// match, instance counts and requests within limits). Every problem has its
// pointer. Answers the template normalised: links filled in from paths,
// each placement's variant (and so its command) resolved from the image
// registry whatever the document said, and its billing computed at cost
// from the inventory's prices.
Result<Json> parse(const Json& doc, const engine::Engine& engine, const artifacts::Images& images,
                   const Limits& limits);

// cpu, memory and accelerators per node, bandwidth per link.
Json reservation_of(const Json& doc);

// The node and link writes that take (+1) or give back (-1) a
// reservation. Taking fails (409, a pointer per shortfall) when something
// is no longer free, is gone, or is not ready.
// pointer: where the shortfalls point in the request ("/solution", "/spec").
Result<std::vector<engine::Change>> reserve(const Json& reservation, int sign, const engine::Engine& engine,
                                            const std::string& pointer = "/spec");

// The id of a component's k-th instance, counted over its placements in
// template order (the orchestrator names them so; drivers find them so).
std::string instance_id(const std::string& deployment, const std::string& component, int k);

// The model a component's instances load, as name@version ("" without one).
std::string model_ref(const Json& component);

}  // namespace cpn::templates
