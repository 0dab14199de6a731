// cpnd: wiring only. Configuration, one io_context on one thread (which
// makes it the engine's strand), the modules, signals and systemd.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <systemd/sd-daemon.h>

#include "cpn/api/api.hpp"
#include "cpn/core/file.hpp"
#include "cpn/core/log.hpp"
#include "cpn/daemon/config.hpp"
#include "cpn/daemon/dev.hpp"
#include "cpn/daemon/periodic.hpp"
#include "cpn/drivers/kubernetes.hpp"
#include "cpn/http/server.hpp"
#include "cpn/schema/schema.hpp"
#include "cpn/sim/twin.hpp"

namespace net = boost::asio;
using namespace cpn;

namespace {

constexpr const char* kVersion = "0.1.0";

int fatal(const Error& e) {
  log::error("{}", e.message);
  for (const auto& f : e.errors) log::error("  {}: {}", f.pointer.empty() ? "/" : f.pointer, f.message);
  return 1;
}

// Writes the bound address where scripts and tests find it (port 0 binds a
// free port).
void write_address_file(const std::string& data, const std::string& url) {
  if (auto s = write_file_atomically(data + "/cpnd.addr", url + "\n"); !s) log::warning("{}", s.error().message);
}

}  // namespace

int main(int argc, char** argv) {
  // 0, 1 and 2 are open, so no descriptor cpnd opens later takes their place
  // (and is handed to a workload as its stdin or stdout).
  for (int fd = 0; fd < 3; ++fd)
    if (::fcntl(fd, F_GETFD) < 0) ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
  CLI::App app{"cpnd: orchestration daemon of a compute power network"};
  daemon::Flags flags;
  bool check_config = false;
  app.add_option("--listen", flags.listen, "HOST:PORT to serve HTTP on (port 0: any free port)");
  app.add_option("--data", flags.data, "data directory (SQLite database, blobs, admin token)");
  app.add_option("--config", flags.config, "YAML config file");
  app.add_option("--log-level", flags.log_level, "debug | info | notice | warning | error");
  app.add_option("--topology", flags.topology, "Topology file to import at start");
  app.add_flag("--dev", flags.dev, "embedded defaults: temporary data, the demo topology, sim drivers");
  app.add_flag("--check-config", check_config, "validate the configuration and exit");
  app.set_version_flag("--version", kVersion);
  CLI11_PARSE(app, argc, argv);

  auto env = daemon::environment();
  auto cfg = daemon::load_config(flags, env);
  if (!cfg) return fatal(cfg.error());
  if (check_config) {
    std::cout << cfg->to_json().dump(2) << "\n";
    return 0;
  }
  log::set_level(log::parse_level(cfg->log_level, log::Level::info));

  namespace fs = std::filesystem;
  if (cfg->data.empty()) {
    char tmpl[] = "/tmp/cpnd-dev-XXXXXX";
    if (!::mkdtemp(tmpl)) return fatal(Error::internal("cannot create a temporary data directory"));
    cfg->data = tmpl;
  }
  std::error_code ec;
  fs::create_directories(cfg->data, ec);
  if (ec) return fatal(Error::internal(fmt::format("cannot create data directory '{}': {}", cfg->data, ec.message())));
  ::chmod(cfg->data.c_str(), 0700);

  auto store = store::Store::open(cfg->data + "/cpnd.db");
  if (!store) return fatal(store.error());
  SystemClock clock;
  engine::Engine engine(std::move(*store), clock);
  net::io_context io(1);
  // Archived objects a handler reads (and those leaving memory) are held
  // until it is done, then let go.
  engine.on_read([&io, &engine] { net::post(io, [&engine] { engine.release_reads(); }); });
  auth::Tokens tokens(engine);
  inventory::Inventory inventory(engine);
  artifacts::Images images(engine);
  artifacts::Files files(engine, cfg->data + "/blobs");
  http::Metrics metrics;
  blueprint::Library library(engine, [&inventory, &engine] {
    // Profiles may target any model cpnd can rate or the inventory has.
    std::set<std::string> models;
    for (const auto& [model, rating] : inventory.measurement().accelerators) models.insert(model);
    for (const auto* n : engine.list(inventory::kNode))
      for (const auto& a : n->body.value("accelerators", Json::array())) models.insert(a.value("model", ""));
    return models;
  });
  catalog::Catalog catalog(engine, library);

  std::optional<std::string> env_token;
  if (const char* t = std::getenv("CPND_ADMIN_TOKEN")) env_token = t;
  auto generated = tokens.bootstrap_admin(cfg->data, env_token);
  if (!generated) return fatal(generated.error());

  // The demo topology is compiled in, so --dev works from any directory.
  std::optional<Json> topology;
  if (!cfg->topology.empty()) {
    auto doc = load_document_file(cfg->topology);
    if (!doc) return fatal(doc.error());
    topology = *doc;
  } else if (cfg->dev && engine.count(inventory::kSite) == 0) {
    auto doc = parse_document(schema::embedded_files().at("examples/topologies/demo.yaml"), Format::yaml);
    if (!doc) return fatal(doc.error());
    topology = *doc;
  }
  if (topology) {
    auto r = inventory.import_topology(*topology);
    if (!r) return fatal(r.error());
    log::notice("topology imported: {} created, {} updated, {} unchanged", r->created, r->updated, r->unchanged);
  }

  if (cfg->dev) {
    auto loaded = daemon::load_dev_catalogue(library, catalog);
    if (!loaded) return fatal(loaded.error());
    log::notice("catalogue loaded: {} component templates, {} blueprints, {} offerings", loaded->templates,
                loaded->blueprints, loaded->offerings);
  }

  bool ready = false;
  orders::Orders orders(engine, catalog, library, images, {cfg->quote_ttl, cfg->order_duration_hours});
  templates::Deployments deployments(engine, images, cfg->deployment_limits);
  // Drivers: the sim twin and local processes for compute, the twin's
  // accounting for the network.
  drivers::kubernetes::Mirror kube_view(engine);  // outlives the driver that reads it
  drivers::Registry compute;
  // Up in the twin: not marked down in the inventory, and no injected fault
  // (POST /v1/sim/faults) on the node or its site.
  auto node_up = [&engine](const std::string& node) { return sim::conditions_of(engine).node_up(engine, node); };
  if (auto s = compute.add(drivers::make_sim_compute(clock, std::chrono::milliseconds(cfg->sim_start_delay_ms),
                                                     node_up, std::chrono::milliseconds(cfg->sim_stop_delay_ms)));
      !s)
    return fatal(s.error());
  // Earlier builds kept the process driver's files in DATA/instances/{run,logs}: moved, so its processes are adopted.
  for (const char* dir : {"run", "logs"}) {
    std::error_code ec;
    std::filesystem::path old = std::filesystem::path(cfg->data) / "instances" / dir, now = std::filesystem::path(cfg->data) / dir;
    if (!std::filesystem::is_directory(old, ec)) continue;
    std::filesystem::create_directories(now, ec);
    for (const auto& f : std::filesystem::directory_iterator(old, ec)) std::filesystem::rename(f.path(), now / f.path().filename(), ec);
    std::filesystem::remove(old, ec);
  }
  drivers::ProcessSettings process{cfg->data + "/run", cfg->data + "/logs", cfg->data + "/work",
                                   std::chrono::milliseconds(cfg->process.grace_ms),
                                   cfg->process.user, cfg->process.allow_root, cfg->process.env,
                                   cfg->process.open_files, cfg->process.memory_factor};
  // Workload ports below the kernel's ephemeral range, or an outgoing connection of anyone's may take one first.
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) {
    int low = 0, high = 0;
    if (range >> low >> high && cfg->process.port_max >= low && cfg->process.port_min <= high)
      log::warning("process.ports {}-{} overlaps the ephemeral range {}-{}: a workload may find its port taken",
                   cfg->process.port_min, cfg->process.port_max, low, high);
  }
  auto process_driver = drivers::make_process_compute(process);
  if (!process_driver) return fatal(process_driver.error());
  if (auto s = compute.add(std::move(*process_driver)); !s) return fatal(s.error());
  // Kubernetes sites: the driver renders from the deployment's template and
  // the site's controller settings, read from a copy (it runs on workers).
  if (auto s = compute.add(drivers::kubernetes::make_compute(
          [&kube_view](const std::string& id) { return kube_view.template_of(id); }, kube_view.sites(),
          std::chrono::milliseconds(cfg->kube_timeout_ms), [&kube_view] { return kube_view.kubernetes_controllers(); },
          [&kube_view](const std::string& id) { return kube_view.models_of(id); }));
      !s)
    return fatal(s.error());
  // Rehearsing failure: the twin's instances behind a controller that is slow, fails or answers garbage.
  if (auto s = compute.add(drivers::make_chaos_compute(clock, [&kube_view](const std::string& site) {
        auto info = kube_view.site(site);
        return info ? info->controller : Json::object();
      }));
      !s)
    return fatal(s.error());
  // Network: the twin's accounting, or (network.driver: linux) namespaces, routes and tc on this host.
  std::unique_ptr<drivers::NetworkDriver> network = drivers::make_sim_network();
  if (cfg->network_driver == "linux") {
    auto linux_net = drivers::make_linux_network(engine, cfg->network_prefix, cfg->data + "/network-linux.json");
    if (!linux_net) return fatal(linux_net.error());
    network = std::move(*linux_net);
    log::notice("network driver: linux (namespaces {}*)", cfg->network_prefix);
  }
  orchestrator::Settings orchestration;
  orchestration.max_attempts = cfg->orchestration.max_attempts;
  orchestration.backoff = std::chrono::milliseconds(cfg->orchestration.retry_backoff_ms);
  orchestration.backoff_cap = std::chrono::milliseconds(cfg->orchestration.retry_backoff_cap_ms);
  orchestration.first_port = cfg->process.port_min;
  orchestration.port_count = cfg->process.port_max - cfg->process.port_min + 1;
  orchestration.calls_per_site = std::max(1, cfg->orchestration.driver_threads / 2);
  if (cfg->orchestration.reconcile_ms > 0)
    orchestration.observe_interval = std::chrono::milliseconds(cfg->orchestration.reconcile_ms);
  orchestrator::Orchestrator orchestrator(engine, compute, *network, orchestration);
  inventory.set_site_condition([&orchestrator](const std::string& site) { return orchestrator.site_condition(site); });
  // Blocking drivers' calls (processes, clusters) run on these workers; their
  // results come back to this thread, which alone commits.
  net::thread_pool driver_workers(static_cast<std::size_t>(cfg->orchestration.driver_threads));
  orchestrator.set_offload([&](std::function<void()> work, std::function<void()> then) {
    net::post(driver_workers, [&io, work = std::move(work), then = std::move(then)]() mutable {
      work();
      net::post(io, std::move(then));
    });
  });
  api::Services services{engine,  inventory, images,  files,                  tokens,  library,
                         catalog, orders,    deployments, orchestrator, metrics, [&] { return ready; }, kVersion,
                         {cfg->metrics_business_without_token, cfg->quotas, cfg->data}};
  http::Router router;
  api::register_routes(router, services);
  http::Dispatcher dispatcher(router, tokens, engine, metrics, cfg->rates);
  dispatcher.set_max_idempotency_keys(cfg->quotas.max_idempotency_keys);
  dispatcher.set_max_yaml_bytes(cfg->limits.max_yaml_bytes);
  http::Server server(io, dispatcher, engine, cfg->limits, [&files] { return files.temp_path(); });
  // Solving (orders, requotes, what-ifs) is CPU work over an immutable
  // snapshot: on these workers, so the API never waits behind it.
  net::thread_pool solver_workers(static_cast<std::size_t>(cfg->solver.threads));
  dispatcher.set_max_prepared(cfg->solver.max_pending);
  server.set_offload([&](std::function<void()> work, std::function<void()> then) {
    net::post(solver_workers, [&io, work = std::move(work), then = std::move(then)]() mutable {
      work();
      net::post(io, std::move(then));
    });
  });
  // Group commit: a write's answer waits for an fdatasync of the log on
  // this thread, which covers every write made before it, so concurrent
  // clients share one instead of each paying its own.
  net::thread_pool sync_worker(1);
  server.set_sync_offload([&](std::function<void()> work, std::function<void()> then) {
    net::post(sync_worker, [&io, work = std::move(work), then = std::move(then)]() mutable {
      work();
      net::post(io, std::move(then));
    });
  });
  engine.store().defer_sync();
  // Upload chunks and large bodies: never behind a solve.
  net::thread_pool file_workers(2);
  server.set_file_offload([&](std::function<void()> work, std::function<void()> then) {
    net::post(file_workers, [&io, work = std::move(work), then = std::move(then)]() mutable {
      work();
      net::post(io, std::move(then));
    });
  });
  if (!cfg->tls_cert.empty())
    if (auto s = server.set_tls(cfg->tls_cert, cfg->tls_key); !s) return fatal(s.error());
  auto port = server.listen(cfg->host(), cfg->port());
  if (!port) return fatal(port.error());
  std::string url = fmt::format("{}://{}:{}", server.tls() ? "https" : "http", cfg->host(), *port);
  write_address_file(cfg->data, url);
  ready = true;
  log::notice("cpnd {} listening on {} (data {})", kVersion, url, cfg->data);
  if (generated->has_value() || cfg->dev) {
    // Printed on stdout, not in the log: the log must never carry secrets.
    std::string token = generated->has_value() ? **generated : "(see " + cfg->data + "/admin.token)";
    if (!generated->has_value() && env_token) token = "(CPND_ADMIN_TOKEN)";
    std::cout << "cpnd is ready at " << url << "\n"
              << "admin token: " << token << "\n"
              << "try: curl -H 'Authorization: Bearer TOKEN' " << url << "/v1/sites\n"
              << std::flush;
  }

  sd_notify(0, "READY=1");
  // Every timer is a PeriodicTask: on this thread, with one exception boundary.
  std::uint64_t watchdog_usec = 0;
  bool watchdog_on = sd_watchdog_enabled(0, &watchdog_usec) > 0;
  daemon::PeriodicTask watchdog(io, "watchdog", std::chrono::milliseconds(watchdog_on ? watchdog_usec / 2000 : 0),
                                [] {
                                  sd_notify(0, "WATCHDOG=1");
                                  return Status{};
                                },
                                metrics);
  watchdog.start();

  // Idempotency keys are kept for a day (as Stripe does), then forgotten;
  // audit records for audit.retain_days.
  daemon::PeriodicTask housekeeping(io, "housekeeping", std::chrono::hours(1), [&]() -> Status {
    engine.store().expire_idempotency(format_time(clock.now() - std::chrono::hours(24)));
    if (auto gone = engine.store().expire_audit(format_time(clock.now() - std::chrono::hours(24) * cfg->audit_retain_days)); gone > 0)
      log::notice("audit log: {} records older than {} days removed", gone, cfg->audit_retain_days);
    return {};
  }, metrics);
  housekeeping.start();
  // The event log, by count and age, every minute: often enough that it never runs far past either.
  daemon::PeriodicTask compaction(io, "event-compaction", std::chrono::minutes(1), [&]() -> Status {
    if (auto gone = engine.store().compact_events(cfg->events_retained, format_time(clock.now() - cfg->events_max_age)); gone > 0)
      log::info("event log compacted: {} events removed (over {} or older than {}s)", gone, cfg->events_retained,
                cfg->events_max_age.count());
    return {};
  }, metrics);
  compaction.start();
  // Finished objects past history.retention are removed (0s keeps them):
  // 100 every 2 s (~10 ms on the thread; up to 180,000 an hour).
  daemon::PeriodicTask retention(io, "history-retention", std::chrono::seconds(2), [&]() -> Status {
    if (cfg->history_retention.count() == 0) return {};
    auto gone = engine.expire_archived(format_time(clock.now() - cfg->history_retention), 100);
    if (!gone) return fail(gone.error());
    if (*gone) log::info("history: {} finished objects older than {}s removed", *gone, cfg->history_retention.count());
    return {};
  }, metrics);
  retention.start();

  // Quotes past their expiry become `expired` (an event each), checked every
  // second; the audit records of refused writes are written in one batch.
  daemon::PeriodicTask quote_expiry(io, "expiry", std::chrono::seconds(1), [&]() -> Status {
    dispatcher.flush_audit();
    if (auto n = orders.expire_due(); !n) return fail(n.error());
    return {};
  }, metrics);
  quote_expiry.start();
  // Commits no client waits for (expiries, retention, the reconciler's) reach the disk within a second too.
  daemon::PeriodicTask log_sync(io, "log-sync", std::chrono::seconds(1), [&]() -> Status {
    auto stats = engine.store().sync_stats();
    if (stats.written > stats.synced)
      net::post(sync_worker, [&engine] {
        if (auto r = engine.store().sync(); !r) log::error("the database log could not be synced: {}", r.error().message);
      });
    return {};
  }, metrics);
  log_sync.start();

  // The reconciler: a resync of every active deployment each
  // orchestrator.reconcile_ms (0 pauses it), and between resyncs the
  // deployments that commits made due, as soon as the thread is free.
  auto publish_queue = [&] {
    metrics.set_work_queue(orchestrator.queue().depth(), orchestrator.queue().retries());
    metrics.set_orphans_stopped(orchestrator.orphans_stopped());
    metrics.set_network(orchestrator.network_queue(), orchestrator.network_orphans());
  };
  daemon::PeriodicTask reconciler(io, "reconcile", std::chrono::milliseconds(cfg->orchestration.reconcile_ms), [&] {
    orchestrator.reconcile();
    publish_queue();
    return Status{};
  }, metrics);
  reconciler.set_wake_body([&] {
    orchestrator.work();
    publish_queue();
    return Status{};
  });
  orchestrator.on_due([&] { reconciler.wake(); });
  reconciler.start();
  // Workloads nothing wants (a restored backup, a failed stop): at start, then every
  // orchestrator.orphan_sweep_s (default 60).
  daemon::PeriodicTask orphan_sweep(io, "orphan-sweep", std::chrono::seconds(cfg->orchestration.orphan_sweep_s), [&] {
    orchestrator.sweep_orphans();
    publish_queue();
    return Status{};
  }, metrics);
  if (cfg->orchestration.reconcile_ms > 0) orphan_sweep.start();

  net::signal_set stop_signals(io, SIGTERM, SIGINT);
  net::signal_set hup(io, SIGHUP);
  net::steady_timer grace(io);
  stop_signals.async_wait([&](boost::system::error_code e, int sig) {
    if (e) return;
    log::notice("signal {}: shutting down (readyz fails, in-flight requests finish)", sig);
    ready = false;
    sd_notify(0, "STOPPING=1");
    hup.cancel();
    watchdog.cancel();
    housekeeping.cancel();
    quote_expiry.cancel();
    reconciler.cancel();
    orphan_sweep.cancel();
    grace.expires_after(std::chrono::seconds(25));
    grace.async_wait([&](boost::system::error_code ge) {
      if (!ge) {
        log::warning("requests still running after 25s; stopping anyway");
        io.stop();
      }
    });
    server.shutdown([&] {
      grace.cancel();
      io.stop();
    });
  });
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](boost::system::error_code e, int) {
      if (e) return;
      auto fresh = daemon::load_config(flags, daemon::environment());
      if (!fresh) {
        fatal(fresh.error());
        log::error("SIGHUP: the new configuration is invalid; keeping the old one");
      } else {
        if (fresh->listen != cfg->listen || fresh->data != cfg->data)
          log::warning("SIGHUP: listen and data take effect only after a restart");
        server.set_limits(fresh->limits);
        // Certificates are reloaded (a renewed one is served to new connections); a bad pair keeps the old one.
        if (!fresh->tls_cert.empty()) {
          if (auto t = server.set_tls(fresh->tls_cert, fresh->tls_key); !t) {
            fatal(t.error());
            log::error("SIGHUP: the new certificate or key does not load; keeping the one in use");
          } else {
            log::notice("SIGHUP: certificate {} loaded", fresh->tls_cert);
          }
        } else if (server.tls()) {
          log::warning("SIGHUP: tls removed from the configuration; HTTPS stays until a restart");
        }
        dispatcher.set_rate_limits(fresh->rates);
        dispatcher.set_max_idempotency_keys(fresh->quotas.max_idempotency_keys);
        dispatcher.set_max_yaml_bytes(fresh->limits.max_yaml_bytes);
        services.settings.metrics_business_without_token = fresh->metrics_business_without_token;
        services.settings.quotas = fresh->quotas;
        dispatcher.set_max_prepared(fresh->solver.max_pending);
        log::set_level(log::parse_level(fresh->log_level, log::Level::info));
        fresh->listen = cfg->listen;
        fresh->data = cfg->data;
        *cfg = *fresh;
        log::notice("SIGHUP: configuration reloaded");
      }
      wait_hup();
    });
  };
  wait_hup();

  io.run();
  // Calls in flight finish (each within its driver's deadline); their results are dropped, and the next cpnd observes again.
  driver_workers.stop();
  driver_workers.join();
  solver_workers.stop();  // solves still waiting are dropped with their requests
  solver_workers.join();
  dispatcher.flush_audit();
  engine.store().checkpoint();
  log::notice("cpnd stopped");
  return 0;
}
