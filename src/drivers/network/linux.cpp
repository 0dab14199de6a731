// The linux network driver: sites as network namespaces joined by veth
// pairs, reservations as `ip route` along the path plus a `tc` HTB class
// (and a u32 filter on the pair of site addresses) on every hop's egress.
// Commands go through iproute2, the tools operators already use and read.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "cpn/drivers/network.hpp"

extern char** environ;

namespace cpn::drivers {
namespace {

// Runs a command (no shell); its stderr becomes the error message.
Status run(const std::vector<std::string>& argv, bool tolerate_failure = false) {
  int err[2];
  if (::pipe(err) != 0) return fail(Error::internal("pipe failed"));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", 0, 0);
  posix_spawn_file_actions_addclose(&actions, err[0]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(err[1]);
  std::string message;
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(err[0], buf, sizeof buf)) > 0) message.append(buf, static_cast<std::size_t>(n));
  ::close(err[0]);
  if (rc != 0) return fail(Error::internal(fmt::format("cannot run {}: {}", argv[0], std::strerror(rc))));
  int status = 0;
  ::waitpid(pid, &status, 0);
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok && !tolerate_failure) {
    std::string line;
    for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
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
    : prefix_(std::move(prefix)), sites_(std::move(sites)), links_(std::move(links)) {
  std::sort(sites_.begin(), sites_.end());
}

LinuxNetwork::~LinuxNetwork() = default;

std::string LinuxNetwork::address_of(const std::string& site) const {
  auto i = static_cast<std::size_t>(std::lower_bound(sites_.begin(), sites_.end(), site) - sites_.begin());
  return fmt::format("10.250.{}.{}", i / 250, i % 250 + 1);
}

Status LinuxNetwork::setup() {
  // Interface names are per namespace, but short: a tag from the prefix keeps
  // two drivers on one host apart while their pairs are being created.
  for (const auto& site : sites_) {
    std::string ns = namespace_of(site);
    if (auto s = run({"ip", "netns", "add", ns}, true); !s) return s;
    if (auto s = run({"ip", "-n", ns, "link", "set", "lo", "up"}); !s) return s;
    if (auto s = run({"ip", "-n", ns, "addr", "replace", address_of(site) + "/32", "dev", "lo"}); !s) return s;
    for (const char* key : {"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"})
      if (auto s = run({"ip", "netns", "exec", ns, "sysctl", "-qw", key}); !s) return s;
  }
  for (std::size_t k = 0; k < links_.size(); ++k) {
    const auto& l = links_[k];
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
  }
  return {};
}

void LinuxNetwork::teardown() {
  for (const auto& site : sites_) (void)run({"ip", "netns", "del", namespace_of(site)}, true);
  reserved_.clear();
  class_of_.clear();
}

Result<std::vector<LinuxNetwork::Hop>> LinuxNetwork::hops(const std::vector<std::string>& sites) const {
  std::vector<Hop> out;
  for (std::size_t i = 0; i + 1 < sites.size(); ++i) {
    const std::string &from = sites[i], &to = sites[i + 1];
    auto it = std::find_if(links_.begin(), links_.end(), [&](const SiteLink& l) {
      return (l.from == from && l.to == to) || (l.from == to && l.to == from);
    });
    if (it == links_.end())
      return fail(Error::invalid_field(fmt::format("/sites/{}", i + 1), fmt::format("no link joins '{}' and '{}'", from, to)));
    auto k = static_cast<std::size_t>(it - links_.begin());
    bool forward = it->from == from;
    out.push_back({namespace_of(from), fmt::format("cv{}{}", k, forward ? 'a' : 'b')});
  }
  return out;
}

Status LinuxNetwork::route(const PathReservation& r) {
  std::string src = address_of(r.sites.front()), dst = address_of(r.sites.back());
  for (std::size_t i = 0; i + 1 < r.sites.size(); ++i) {
    const std::string &from = r.sites[i], &to = r.sites[i + 1];
    auto it = std::find_if(links_.begin(), links_.end(), [&](const SiteLink& l) {
      return (l.from == from && l.to == to) || (l.from == to && l.to == from);
    });
    auto k = static_cast<std::size_t>(it - links_.begin());
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
    if (existing->second.sites == r.sites && existing->second.mbps == r.mbps) return {};
    if (existing->second.sites != r.sites)
      if (auto s = release(r.id); !s) return s;
  }
  auto path = hops(r.sites);
  if (!path) return fail(path.error());
  auto [slot, fresh] = class_of_.emplace(r.id, next_class_);
  if (fresh && ++next_class_ >= 9999) return fail(Error::conflict("no tc class left on this host"));
  std::string minor = std::to_string(slot->second);
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
  reserved_[r.id] = r;
  return {};
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
  return {};
}


}  // namespace cpn::drivers
