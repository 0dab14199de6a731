// The linux network driver: sites as network namespaces joined by veth
// pairs, reservations as `ip route` along the path plus a `tc` HTB class
// (and a u32 filter on the pair of site addresses) on every hop's egress.
// Commands go through iproute2, the tools operators already use and read.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "cpn/core/document.hpp"
#include "cpn/core/file.hpp"
#include "cpn/drivers/network.hpp"

namespace cpn::drivers {
namespace {

// Runs a command (no shell); its stderr becomes the error message (with
// `out`, its stdout and stderr both land there). One that has not
// finished within kCommandTimeout is killed and fails: a hung `tc` costs
// one deadline, never the thread.
constexpr auto kCommandTimeout = std::chrono::seconds(10);

Status run_command(const std::vector<std::string>& argv, bool tolerate_failure, std::string* out) {
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return fail(Error::internal("pipe failed"));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  if (out) posix_spawn_file_actions_adddup2(&actions, err[1], 1);
  else posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", 0, 0);
  // ip and tc get none of cpnd's descriptors and none of its environment (its admin token).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
  char* env[] = {path, nullptr};
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  ::close(err[1]);
  std::string line;
  for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
  if (rc != 0) {
    ::close(err[0]);
    return fail(Error::internal(fmt::format("cannot run {}: {}", argv[0], std::strerror(rc))));
  }
  std::string message;
  char buf[512];
  auto deadline = std::chrono::steady_clock::now() + kCommandTimeout;
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{err[0], POLLIN, 0};
    int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(err[0], buf, sizeof buf);
    if (n > 0) {
      if (message.size() < (out ? std::size_t{1} << 20 : 4096)) message.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // end of its stderr: it exited (or closed it)
  }
  ::close(err[0]);
  int status = 0;
  // Its stderr closed: it has exited, or is about to (the deadline still holds).
  while (!timed_out) {
    pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid || (got < 0 && errno != EINTR)) break;
    if (std::chrono::steady_clock::now() >= deadline) timed_out = true;
    else std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (timed_out) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (timed_out) return fail(Error::internal(fmt::format("`{}` did not finish within {} s: killed", line,
                                                          std::chrono::seconds(kCommandTimeout).count())));
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (out) *out = message;
  if (!ok && !tolerate_failure) {
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return fail(Error::internal(fmt::format("`{}` failed: {}", line, message)));
  }
  return {};
}

std::string link_address(std::size_t k, int end) {  // end 1 or 2 of link k's /30
  return fmt::format("10.251.{}.{}", k / 64, (k % 64) * 4 + static_cast<std::size_t>(end));
}

}  // namespace

LinuxNetwork::LinuxNetwork(std::string prefix, std::vector<std::string> sites, std::vector<SiteLink> links)
    : prefix_(std::move(prefix)) {
  extend(sites, links);
}

bool LinuxNetwork::extend(const std::vector<std::string>& sites, const std::vector<SiteLink>& links) {
  std::vector<std::string> sorted = sites;
  std::sort(sorted.begin(), sorted.end());
  bool added = false;
  for (const auto& site : sorted)
    if (!site_index_.count(site)) {
      int next = 0;
      for (const auto& [id, i] : site_index_) next = std::max(next, i + 1);
      site_index_[site] = next;
      added = true;
    }
  for (const auto& l : links)
    if (!link_index_.count(l.id)) {
      int next = 0;
      for (const auto& [id, i] : link_index_) next = std::max(next, i + 1);
      link_index_[l.id] = next;
      added = true;
    }
  for (const auto& site : sorted)
    if (std::find(sites_.begin(), sites_.end(), site) == sites_.end()) {
      sites_.push_back(site);
      unset_sites_.insert(site);
    }
  for (const auto& l : links)
    if (std::none_of(links_.begin(), links_.end(), [&](const SiteLink& x) { return x.id == l.id; })) {
      links_.push_back(l);
      unset_links_.insert(l.id);
    }
  if (added) (void)save();
  return added;
}

Status LinuxNetwork::persist_to(std::string state_file) {
  state_file_ = std::move(state_file);
  if (auto text = read_text_file(state_file_)) {
    Json state = Json::parse(*text, nullptr, false);
    if (state.is_discarded() || !state.is_object())
      return fail(Error::internal(fmt::format("'{}' is not the linux network driver's state", state_file_)));
    // What an earlier cpnd configured wins: those indexes are on the host.
    // Sites and links given before loading that it does not know come after.
    auto merge = [](const Json& saved, std::map<std::string, int>& index, const std::vector<std::string>& given) {
      std::map<std::string, int> out;
      int next = 0;
      for (const auto& [id, i] : saved.items()) {
        out[id] = i.get<int>();
        next = std::max(next, out[id] + 1);
      }
      for (const auto& id : given)
        if (!out.count(id)) out[id] = next++;
      index = std::move(out);
    };
    std::vector<std::string> link_ids;
    for (const auto& l : links_) link_ids.push_back(l.id);
    const Json sites = state.value("sites", Json::object()), links = state.value("links", Json::object());
    merge(sites, site_index_, sites_);
    merge(links, link_index_, link_ids);
    const Json reservations = state.value("reservations", Json::object());
    for (const auto& [id, r] : reservations.items()) {
      reserved_[id] = {id, r["sites"].get<std::vector<std::string>>(), r["mbps"].get<double>()};
      class_of_[id] = r["class"].get<int>();
      next_class_ = std::max(next_class_, class_of_[id] + 1);
      if (r.value("pending", false)) pending_.insert(id);
    }
    // Never hand out a class again that an earlier run may have configured.
    next_class_ = std::max(next_class_, state.value("next_class", next_class_));
  }
  return save();
}

Status LinuxNetwork::save() const {
  if (state_file_.empty()) return {};
  Json reservations = Json::object();
  for (const auto& [id, r] : reserved_)
    reservations[id] = {{"sites", r.sites}, {"mbps", r.mbps}, {"class", class_of_.count(id) ? class_of_.at(id) : 0},
                        {"pending", pending_.count(id) > 0}};
  Json state = {{"sites", site_index_}, {"links", link_index_}, {"next_class", next_class_}, {"reservations", reservations}};
  // A crash leaves the old state or the new, never half.
  return write_file_atomically(state_file_, state.dump(1) + "\n", true);
}

const SiteLink* LinuxNetwork::link_between(const std::string& a, const std::string& b) const {
  auto it = std::find_if(links_.begin(), links_.end(),
                         [&](const SiteLink& l) { return (l.from == a && l.to == b) || (l.from == b && l.to == a); });
  return it == links_.end() ? nullptr : &*it;
}

LinuxNetwork::~LinuxNetwork() = default;

std::string LinuxNetwork::address_of(const std::string& site) const {
  auto it = site_index_.find(site);
  auto i = static_cast<std::size_t>(it == site_index_.end() ? 0 : it->second);
  return fmt::format("10.250.{}.{}", i / 250, i % 250 + 1);
}

Status LinuxNetwork::run(const std::vector<std::string>& argv, bool tolerate_failure, std::string* out) {
  ++commands_;
  return run_command(argv, tolerate_failure, out);
}

Status LinuxNetwork::setup() {
  // Only what this run has not configured yet: a site added to the
  // inventory costs its own commands, not those of every site and link.
  for (const auto& site : sites_)
    if (unset_sites_.count(site)) {
      if (auto s = setup_site(site); !s) return s;
      unset_sites_.erase(site);
    }
  for (const auto& l : links_)
    if (unset_links_.count(l.id)) {
      if (auto s = setup_link(l); !s) return s;
      unset_links_.erase(l.id);
    }
  return {};
}

Status LinuxNetwork::setup_site(const std::string& site) {
  std::string ns = namespace_of(site);
  if (auto s = run({"ip", "netns", "add", ns}, true); !s) return s;
  if (auto s = run({"ip", "-n", ns, "link", "set", "lo", "up"}); !s) return s;
  if (auto s = run({"ip", "-n", ns, "addr", "replace", address_of(site) + "/32", "dev", "lo"}); !s) return s;
  for (const char* key : {"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"})
    if (auto s = run({"ip", "netns", "exec", ns, "sysctl", "-qw", key}); !s) return s;
  return {};
}

Status LinuxNetwork::setup_link(const SiteLink& l) {
  // Interface names are per namespace, but short: the link's index.
  auto k = static_cast<std::size_t>(link_index_.at(l.id));
  std::string a = fmt::format("cv{}a", k), b = fmt::format("cv{}b", k);
  std::string na = namespace_of(l.from), nb = namespace_of(l.to);
  if (!run({"ip", "-n", na, "link", "show", a}, false)) {
    if (auto s = run({"ip", "link", "add", a, "netns", na, "type", "veth", "peer", "name", b, "netns", nb}); !s) return s;
  }
  for (auto [ns, dev, end] : {std::tuple{na, a, 1}, std::tuple{nb, b, 2}}) {
    if (auto s = run({"ip", "-n", ns, "addr", "replace", link_address(k, end) + "/30", "dev", dev}); !s) return s;
    if (auto s = run({"ip", "-n", ns, "link", "set", dev, "up"}); !s) return s;
    // HTB at the root: unreserved traffic goes to a wide default class.
    // Added once (a second add fails on the existing one; the class below
    // fails loudly if there is none).
    (void)run({"tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "9999"}, true);
    if (auto s = run({"tc", "-n", ns, "class", "replace", "dev", dev, "parent", "1:", "classid", "1:9999", "htb", "rate",
                      "10gbit"});
        !s)
      return s;
  }
  return {};
}

void LinuxNetwork::teardown() {
  for (const auto& site : sites_) (void)run({"ip", "netns", "del", namespace_of(site)}, true);
  reserved_.clear();
  class_of_.clear();
  for (const auto& site : sites_) unset_sites_.insert(site);
  for (const auto& l : links_) unset_links_.insert(l.id);
}

std::vector<std::string> LinuxNetwork::remove_orphans(const std::set<std::string>& wanted) {
  std::vector<std::string> removed = NetworkDriver::remove_orphans(wanted);
  std::set<int> held;
  for (const auto& [id, minor] : class_of_) held.insert(minor);
  for (const auto& l : links_) {
    if (unset_links_.count(l.id)) continue;
    auto k = static_cast<std::size_t>(link_index_.at(l.id));
    for (auto [ns, dev] : {std::pair{namespace_of(l.from), fmt::format("cv{}a", k)},
                           std::pair{namespace_of(l.to), fmt::format("cv{}b", k)}}) {
      std::string listing;
      if (!run({"tc", "-n", ns, "class", "show", "dev", dev}, false, &listing)) continue;
      // Lines such as "class htb 1:12 root prio 0 rate 20Mbit ceil 20Mbit ...".
      for (std::size_t at = listing.find("class htb 1:"); at != std::string::npos;
           at = listing.find("class htb 1:", at + 1)) {
        int minor = std::atoi(listing.c_str() + at + 12);
        if (minor <= 0 || minor == 9999 || held.count(minor)) continue;
        std::string m = std::to_string(minor);
        (void)run({"tc", "-n", ns, "filter", "del", "dev", dev, "parent", "1:", "prio", m}, true);
        if (run({"tc", "-n", ns, "class", "del", "dev", dev, "classid", "1:" + m}, true))
          removed.push_back(fmt::format("tc class 1:{} on {} in {}", m, dev, ns));
      }
    }
  }
  return removed;
}

Result<std::vector<LinuxNetwork::Hop>> LinuxNetwork::hops(const std::vector<std::string>& sites) const {
  std::vector<Hop> out;
  for (std::size_t i = 0; i + 1 < sites.size(); ++i) {
    const std::string &from = sites[i], &to = sites[i + 1];
    const SiteLink* it = link_between(from, to);
    if (!it)
      return fail(Error::invalid_field(fmt::format("/sites/{}", i + 1), fmt::format("no link joins '{}' and '{}'", from, to)));
    auto k = static_cast<std::size_t>(link_index_.at(it->id));
    bool forward = it->from == from;
    out.push_back({namespace_of(from), fmt::format("cv{}{}", k, forward ? 'a' : 'b')});
  }
  return out;
}

Status LinuxNetwork::route(const PathReservation& r) {
  std::string src = address_of(r.sites.front()), dst = address_of(r.sites.back());
  for (std::size_t i = 0; i + 1 < r.sites.size(); ++i) {
    const std::string &from = r.sites[i], &to = r.sites[i + 1];
    const SiteLink* it = link_between(from, to);
    auto k = static_cast<std::size_t>(link_index_.at(it->id));
    bool forward = it->from == from;
    std::string next = link_address(k, forward ? 2 : 1), back = link_address(k, forward ? 1 : 2);
    if (auto s = run({"ip", "-n", namespace_of(from), "route", "replace", dst + "/32", "via", next}); !s) return s;
    if (auto s = run({"ip", "-n", namespace_of(to), "route", "replace", src + "/32", "via", back}); !s) return s;
  }
  return {};
}

Status LinuxNetwork::reserve(const PathReservation& r) {
  if (r.sites.size() < 2) return fail(Error::invalid_field("/sites", "a route has at least two sites"));
  if (!(r.mbps > 0)) return fail(Error::invalid_field("/mbps", "a reservation needs a rate above 0"));
  auto existing = reserved_.find(r.id);
  if (existing != reserved_.end()) {
    // Done already, unless a crash (or a failed save) left it half done.
    if (existing->second.sites == r.sites && existing->second.mbps == r.mbps && !pending_.count(r.id)) return {};
    if (existing->second.sites != r.sites)
      if (auto s = release(r.id); !s) return s;
  }
  auto path = hops(r.sites);
  if (!path) return fail(path.error());
  auto [slot, fresh] = class_of_.emplace(r.id, next_class_);
  if (fresh && ++next_class_ >= 9999) return fail(Error::conflict("no tc class left on this host"));
  std::string minor = std::to_string(slot->second);
  // Intent first: the class and the reservation are on disk, marked pending,
  // before tc changes anything, so a crash leaves nothing the state file does not know.
  reserved_[r.id] = r;
  pending_.insert(r.id);
  if (auto s = save(); !s) return s;
  std::string rate = fmt::format("{}kbit", std::max<long long>(8, std::llround(r.mbps * 1000)));
  std::string src = address_of(r.sites.front()) + "/32", dst = address_of(r.sites.back()) + "/32";
  for (const auto& hop : *path) {
    if (auto s = run({"tc", "-n", hop.ns, "class", "replace", "dev", hop.dev, "parent", "1:", "classid", "1:" + minor,
                      "htb", "rate", rate, "ceil", rate});
        !s)
      return s;
    // One filter per reservation, at its own priority: replaced by deleting it first.
    (void)run({"tc", "-n", hop.ns, "filter", "del", "dev", hop.dev, "parent", "1:", "prio", minor}, true);
    if (auto s = run({"tc", "-n", hop.ns, "filter", "add", "dev", hop.dev, "parent", "1:", "protocol", "ip", "prio", minor,
                      "u32", "match", "ip", "src", src, "match", "ip", "dst", dst, "flowid", "1:" + minor});
        !s)
      return s;
  }
  if (auto s = route(r); !s) return s;
  pending_.erase(r.id);
  return save();
}

Status LinuxNetwork::release(const std::string& id) {
  auto it = reserved_.find(id);
  if (it == reserved_.end()) return {};
  auto path = hops(it->second.sites);
  std::string minor = std::to_string(class_of_[id]);
  if (path)
    for (const auto& hop : *path) {
      (void)run({"tc", "-n", hop.ns, "filter", "del", "dev", hop.dev, "parent", "1:", "prio", minor}, true);
      if (auto s = run({"tc", "-n", hop.ns, "class", "del", "dev", hop.dev, "classid", "1:" + minor}, true); !s) return s;
    }
  // Routes stay: they are shared by every reservation between the same sites and carry nothing unreserved.
  reserved_.erase(it);
  class_of_.erase(id);
  pending_.erase(id);
  return save();
}


}  // namespace cpn::drivers
