// The engine the inventory and deployment template targets check against.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>

#include "cpn/artifacts/artifacts.hpp"
#include "cpn/core/clock.hpp"
#include "cpn/core/document.hpp"
#include "cpn/engine/engine.hpp"
#include "cpn/inventory/inventory.hpp"
#include "cpn/schema/schema.hpp"
#include "cpn/store/store.hpp"

namespace cpn::fuzz {

// An engine over an in-memory SQLite store with the embedded demo topology
// imported and one multi-architecture image (plate-reader:1.0), built once
// per process; reset() starts over (a target that writes calls it every so
// often, so state stays bounded).
class World {
 public:
  static World& get() {
    static World world;
    return world;
  }
  engine::Engine& engine() { return *engine_; }
  inventory::Inventory& inventory() { return *inventory_; }
  artifacts::Images& images() { return *images_; }

  void reset() {
    images_.reset();
    inventory_.reset();
    engine_.reset();
    auto store = store::Store::open(":memory:");
    if (!store) throw std::runtime_error(store.error().message);
    engine_ = std::make_unique<engine::Engine>(std::move(*store), clock_);
    inventory_ = std::make_unique<inventory::Inventory>(*engine_);
    auto demo = parse_document(schema::embedded_files().at("examples/topologies/demo.yaml"), Format::yaml);
    if (!demo) throw std::runtime_error(demo.error().message);
    if (auto r = inventory_->import_topology(*demo); !r) throw std::runtime_error(r.error().message);
    images_ = std::make_unique<artifacts::Images>(*engine_);
    const std::string digest = "sha256:" + std::string(64, 'a');
    Json image = {{"name", "plate-reader"},
                  {"version", "1.0"},
                  {"variants",
                   {{{"platform", "linux/amd64"}, {"accelerator", "cuda"}, {"digest", digest}, {"size", 1000},
                     {"command", {"plate-reader", "--gpu"}}},
                    {{"platform", "linux/amd64"}, {"accelerator", "none"}, {"digest", digest}, {"size", 1000}},
                    {{"platform", "linux/arm64"}, {"accelerator", "cann"}, {"digest", digest}, {"size", 1000}}}}};
    if (auto r = images_->collection().create(image); !r) throw std::runtime_error(r.error().message);
  }

 private:
  World() { reset(); }
  ManualClock clock_{std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000))};
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<inventory::Inventory> inventory_;
  std::unique_ptr<artifacts::Images> images_;
};

}  // namespace cpn::fuzz
