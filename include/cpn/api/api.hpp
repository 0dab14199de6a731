// The REST surface: thin adapters from requests to module calls, one file
// per area, all registered in one route table that also feeds
// /openapi.json and the authorisation tests.
#pragma once

#include <functional>
#include <string>

#include "cpn/artifacts/artifacts.hpp"
#include "cpn/auth/limits.hpp"
#include "cpn/auth/tokens.hpp"
#include "cpn/blueprint/library.hpp"
#include "cpn/catalog/catalog.hpp"
#include "cpn/http/metrics.hpp"
#include "cpn/http/router.hpp"
#include "cpn/inventory/inventory.hpp"
#include "cpn/orchestrator/orchestrator.hpp"
#include "cpn/orders/orders.hpp"
#include "cpn/template/deployments.hpp"

namespace cpn::api {

// What the routes need of the configuration.
struct Settings {
  bool metrics_business_without_token = false;
  auth::Quotas quotas;
  std::string data_dir;                         // /readyz watches its free space
  std::uint64_t min_free_bytes = 16ull << 20;   // below this, not ready: writes would fail
};

struct Services {
  engine::Engine& engine;
  inventory::Inventory& inventory;
  artifacts::Images& images;
  artifacts::Files& files;
  auth::Tokens& tokens;
  blueprint::Library& library;
  catalog::Catalog& catalog;
  orders::Orders& orders;
  templates::Deployments& deployments;
  orchestrator::Orchestrator& orchestrator;
  http::Metrics& metrics;
  std::function<bool()> ready;  // false while starting or stopping
  std::string version;
  Settings settings;
};

void register_routes(http::Router& router, Services& services);

// OpenAPI 3.0 document built from the route table and the JSON Schemas.
Json openapi_document(const http::Router& router, const std::string& version);

}  // namespace cpn::api
