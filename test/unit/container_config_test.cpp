#include "core/docker/container_config.hpp"

#include <cctype>

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using nlohmann::json;
using namespace orch::docker;

namespace {

ContainerRequest scanner() {
  ContainerRequest r;
  r.id = {"orchestration_demo", 1, 42, 7, "scan", 2, "7301234567890123456"};
  r.image = "orchestration/security-scanner:1.0";
  r.entry_path = "/agent/scan";
  r.command = {"--format", "json"};
  r.env = {{"LOG_LEVEL", "info"}};
  r.secrets = {{"GITHUB_TOKEN", "ghp_secret"}};
  r.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  r.memory_mb = 128;
  r.cpus = 0.5;
  r.pids = 32;
  return r;
}

}  // namespace

bool docker_accepts_name(const std::string& name) {  // [a-zA-Z0-9][a-zA-Z0-9_.-]+
  if (name.size() < 2 || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

TEST(ContainerConfig, NamesAreDeterministic) {
  EXPECT_EQ(container_name(scanner().id), "orch-7301234567890123456-orchestration_demo-r42-scan-a2");
  EXPECT_EQ(container_name(scanner().id), container_name(scanner().id));
  AttemptId odd{"my db!", 1, 5, 9, "n-1", 1, "42"};
  EXPECT_EQ(container_name(odd), "orch-42-my_db_-r5-n-1-a1");
  EXPECT_TRUE(docker_accepts_name(container_name(odd)));
  AttemptId unicode{"d\xc3\xa9j\xc3\xa0/x", 1, 5, 9, "k", 3, "1"};
  EXPECT_TRUE(docker_accepts_name(container_name(unicode))) << container_name(unicode);
}

TEST(ContainerConfig, TwoClustersSameDatabaseNeverShareAName) {
  ContainerRequest ours = scanner(), theirs = scanner();
  theirs.id.cluster = "7301234567890123457";
  EXPECT_NE(container_name(ours.id), container_name(theirs.id));
  EXPECT_TRUE(docker_accepts_name(container_name(theirs.id)));
  // Each attempt of a node has a name of its own, in either cluster.
  ContainerRequest retry = scanner();
  retry.id.attempt = 3;
  EXPECT_NE(container_name(ours.id), container_name(retry.id));
  EXPECT_EQ(create_body(ours, Ceilings{})["Labels"]["orchestration.cluster"], "7301234567890123456");
  EXPECT_EQ(create_body(theirs, Ceilings{})["Labels"]["orchestration.cluster"], "7301234567890123457");
}

TEST(ContainerConfig, OursFiltersNameClusterAndDatabase) {
  EXPECT_EQ(ours_filters("7301234567890123456", "orchestration_demo"),
            (std::vector<std::string>{"orchestration.managed=true", "orchestration.cluster=7301234567890123456",
                                      "orchestration.database=orchestration_demo"}));
  // Every filter is a label the create body sets, with that value.
  json labels = create_body(scanner(), Ceilings{})["Labels"];
  for (const auto& filter : ours_filters(scanner().id.cluster, scanner().id.database)) {
    std::size_t eq = filter.find('=');
    EXPECT_EQ(labels[filter.substr(0, eq)], filter.substr(eq + 1)) << filter;
  }
}

TEST(ContainerConfig, TheSandboxIsOnByDefault) {
  json body = create_body(scanner(), Ceilings{});
  const json& host = body["HostConfig"];
  EXPECT_EQ(host["NetworkMode"], "none");
  EXPECT_EQ(body["NetworkDisabled"], true);
  EXPECT_EQ(host["ReadonlyRootfs"], true);
  EXPECT_EQ(host["Tmpfs"]["/tmp"], "rw,noexec,nosuid,nodev,mode=1777,size=64m");  // writable by the non-root user
  EXPECT_EQ(host["CapDrop"], json({"ALL"}));
  EXPECT_EQ(host["SecurityOpt"], json({"no-new-privileges"}));
  EXPECT_EQ(host["PidsLimit"], 32);
  EXPECT_EQ(host["Memory"], 128 * 1024 * 1024);
  EXPECT_EQ(host["MemorySwap"], host["Memory"]);  // no swap
  EXPECT_EQ(host["NanoCpus"], 500000000);
  EXPECT_EQ(host["Privileged"], false);
  EXPECT_EQ(host["AutoRemove"], false);
  EXPECT_EQ(body["User"], "65534:65534");
}

TEST(ContainerConfig, StdinArgvEnvAndLabels) {
  json body = create_body(scanner(), Ceilings{});
  EXPECT_EQ(body["OpenStdin"], true);
  EXPECT_EQ(body["StdinOnce"], true);
  EXPECT_EQ(body["Tty"], false);
  EXPECT_EQ(body["Entrypoint"], json({"/agent/scan"}));
  EXPECT_EQ(body["Cmd"], json({"--format", "json"}));
  EXPECT_EQ(body["Env"], json({"LOG_LEVEL=info", "GITHUB_TOKEN=ghp_secret",
                               "TRACEPARENT=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}));
  EXPECT_EQ(body["Labels"]["orchestration.run"], "42");
  EXPECT_EQ(body["Labels"]["orchestration.node"], "7");
  EXPECT_EQ(body["Labels"]["orchestration.attempt"], "2");
  EXPECT_EQ(body["Labels"]["orchestration.managed"], "true");
  EXPECT_EQ(body["Labels"]["orchestration.cluster"], "7301234567890123456");
  EXPECT_EQ(body["Labels"]["orchestration.database"], "orchestration_demo");
  // The secret is in the environment only, never in a label.
  EXPECT_EQ(body["Labels"].dump().find("ghp_secret"), std::string::npos);
  ContainerRequest plain = scanner();
  plain.entry_path.reset();
  plain.command.clear();
  json defaults = create_body(plain, Ceilings{});
  EXPECT_FALSE(defaults.contains("Entrypoint"));  // the image's own
  EXPECT_FALSE(defaults.contains("Cmd"));
}

TEST(ContainerConfig, CeilingsClampTheSpec) {
  ContainerRequest r = scanner();
  r.memory_mb = 4096;
  r.cpus = 8;
  r.pids = 1000;
  r.allow_network = true;
  json body = create_body(r, Ceilings{512, 1, 64, false});
  EXPECT_EQ(body["HostConfig"]["Memory"], 512 * 1024 * 1024);
  EXPECT_EQ(body["HostConfig"]["NanoCpus"], 1000000000);
  EXPECT_EQ(body["HostConfig"]["PidsLimit"], 64);
  EXPECT_EQ(body["HostConfig"]["NetworkMode"], "none");  // the server forbids networks
  EXPECT_EQ(create_body(r, Ceilings{})["HostConfig"]["NetworkMode"], "bridge");
}

TEST(ContainerConfig, ImageAllowlist) {
  EXPECT_TRUE(image_allowed("orchestration/scanner:1.0", "orchestration/*"));
  EXPECT_TRUE(image_allowed("busybox", "alpine:*, busybox"));
  EXPECT_TRUE(image_allowed("registry:5000/team/app:v2", "registry:5000/team/*:v?"));
  EXPECT_FALSE(image_allowed("evil/orchestration/x", "orchestration/*"));
  EXPECT_FALSE(image_allowed("busybox:latest", "busybox"));
  EXPECT_FALSE(image_allowed("anything", ""));
  EXPECT_TRUE(image_allowed("anything", "*"));
}

TEST(ContainerConfig, ApiVersionNegotiation) {
  // Debian's engine 20.10.
  EXPECT_EQ(negotiate_api_version(json::parse(R"({"ApiVersion": "1.41", "MinAPIVersion": "1.12"})")), "1.41");
  // A current engine that refuses clients below 1.44: use the highest both speak.
  EXPECT_EQ(negotiate_api_version(json::parse(R"({"ApiVersion": "1.50", "MinAPIVersion": "1.44"})")), "1.45");
  EXPECT_THROW(negotiate_api_version(json::parse(R"({"ApiVersion": "1.60", "MinAPIVersion": "1.50"})")), orch::UserError);
  EXPECT_THROW(negotiate_api_version(json::parse(R"({"ApiVersion": "1.40", "MinAPIVersion": "1.12"})")), orch::UserError);
  EXPECT_THROW(negotiate_api_version(json::parse(R"({"Version": "x"})")), orch::UserError);
  EXPECT_LT(compare_api_versions("1.9", "1.41"), 0);
  EXPECT_EQ(compare_api_versions("1.41", "1.41"), 0);
}
