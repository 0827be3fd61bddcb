#include "core/registry/names.hpp"

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using orch::UserError;
using namespace orch::registry;

TEST(Names, IdentifiersAcceptTheDocumentedSet) {
  for (const char* ok : {"a", "scanner", "security-scanner", "v1.2_beta", "0day", "A-Z"})
    EXPECT_EQ(name_problem(NameKind::identifier, ok), "") << ok;
  EXPECT_EQ(name_problem(NameKind::identifier, std::string(63, 'x')), "");
}

TEST(Names, IdentifiersRejectEverythingElse) {
  EXPECT_EQ(name_problem(NameKind::identifier, ""), "it is empty");
  EXPECT_EQ(name_problem(NameKind::identifier, std::string(64, 'x')),
            "it is longer than 63 characters");
  EXPECT_EQ(name_problem(NameKind::identifier, "-x"), "it must start with a letter or a digit");
  for (const char* bad : {"has space", "a/b", "a*", "a>", "a\nb", "a$b", "aé"})
    EXPECT_EQ(name_problem(NameKind::identifier, bad),
              "it may contain only letters, digits, '_', '-' and '.'")
        << bad;
}

TEST(Names, EnvVarsFollowShellRules) {
  EXPECT_EQ(name_problem(NameKind::env_var, "API_TOKEN"), "");
  EXPECT_EQ(name_problem(NameKind::env_var, "_x1"), "");
  EXPECT_EQ(name_problem(NameKind::env_var, "1X"), "it must not start with a digit");
  EXPECT_EQ(name_problem(NameKind::env_var, "A-B"), "it may contain only letters, digits and '_'");
  EXPECT_EQ(name_problem(NameKind::env_var, "A.B"), "it may contain only letters, digits and '_'");
  EXPECT_EQ(name_problem(NameKind::env_var, std::string(129, 'A')),
            "it is longer than 128 characters");
}

TEST(Names, RequireValidNameSaysWhatAndWhy) {
  try {
    require_valid_name(NameKind::env_var, "secret", "bad-name");
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(),
                 "invalid secret name \"bad-name\": it may contain only letters, digits and '_'");
    EXPECT_NE(e.hint().find("not starting with a digit"), std::string::npos);
    EXPECT_STREQ(e.sqlstate(), "22023");
  }
}

TEST(Names, KindsFromSql) {
  EXPECT_EQ(name_kind_from_string("agent"), NameKind::identifier);
  EXPECT_EQ(name_kind_from_string("node"), NameKind::node_key);
  EXPECT_EQ(name_kind_from_string("secret"), NameKind::env_var);
  EXPECT_THROW(name_kind_from_string("table"), UserError);
}

TEST(Names, NodeKeysHaveNoDots) {
  EXPECT_EQ(name_problem(NameKind::node_key, "scan-1_b"), "");
  EXPECT_EQ(name_problem(NameKind::node_key, "a.b"), "it may contain only letters, digits, '_' and '-'");
}
