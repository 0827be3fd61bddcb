#include "core/common/secret_mask.hpp"

#include <gtest/gtest.h>

using nlohmann::json;
using orch::mask_secrets;

TEST(SecretMask, EveryOccurrenceIsMasked) {
  EXPECT_EQ(mask_secrets("TOKEN=hunter22 again hunter22.", {"hunter22"}), "TOKEN=*** again ***.");
  EXPECT_EQ(mask_secrets("nothing here", {"hunter22"}), "nothing here");
  EXPECT_EQ(mask_secrets("a=s3cr3t b=t0k3n", {"s3cr3t", "t0k3n"}), "a=*** b=***");
  EXPECT_EQ(mask_secrets("", {"s3cr3t"}), "");
  EXPECT_EQ(mask_secrets("abc", {}), "abc");
}

TEST(SecretMask, ShortValuesAreNotMasked) {
  // Masking "1" or "yes" would destroy every log; such values protect nothing anyway.
  EXPECT_EQ(mask_secrets("exit 1 yes abc", {"1", "yes", "abc"}), "exit 1 yes abc");
  EXPECT_EQ(mask_secrets("pin 1234", {"1234"}), "pin ***");
}

TEST(SecretMask, AValueContainingAnotherIsMaskedWhole) {
  EXPECT_EQ(mask_secrets("key=abcdefgh", {"abcd", "abcdefgh"}), "key=***");
  EXPECT_EQ(mask_secrets("key=abcdefgh", {"abcdefgh", "abcd"}), "key=***");
  EXPECT_EQ(mask_secrets("key=xxabcdefgh", {"cdef", "abcdefgh"}), "key=xx***");
  // Overlapping values leave no part of either visible.
  EXPECT_EQ(mask_secrets("[abcdefgh]", {"abcdef", "defgh"}), "[***]");
  // An occurrence overlapping itself ("aaaa" in "aaaaa") is masked to its end.
  EXPECT_EQ(mask_secrets("xaaaaax", {"aaaa"}), "x***x");
}

TEST(SecretMask, JsonEscapedFormsAreMasked) {
  std::string secret = "pa\"ss\\word";
  EXPECT_EQ(mask_secrets(R"({"password": "pa\"ss\\word"})", {secret}), R"({"password": "***"})");
  EXPECT_EQ(mask_secrets("raw pa\"ss\\word", {secret}), "raw ***");
  // Non-ASCII, as Python's json.dumps writes it (\u00e9) and as it is.
  std::string accented = "caf\xc3\xa9-key";
  EXPECT_EQ(mask_secrets(R"({"k": "caf\u00e9-key"})", {accented}), R"({"k": "***"})");
  EXPECT_EQ(mask_secrets("k=" + accented, {accented}), "k=***");
  // A newline in a secret (a PEM key) appears as \n in JSON.
  EXPECT_EQ(mask_secrets(R"("line1\nline2")", {"line1\nline2"}), R"("***")");
}

TEST(SecretMask, DocumentsAreMaskedInValuesAndKeys) {
  json doc = json::parse(R"({"env": ["A=hunter22", {"hunter22": "x", "n": 5, "other": "no"}],
                             "note": "hunter22 twice hunter22"})");
  mask_secrets(doc, {"hunter22"});
  EXPECT_EQ(doc, json::parse(R"({"env": ["A=***", {"***": "x", "n": 5, "other": "no"}],
                                 "note": "*** twice ***"})"));
  // Two keys that mask alike keep both values.
  json keys = json::parse(R"({"hunter22": 1, "s3cr3t!!": 2, "***": 3})");
  mask_secrets(keys, {"hunter22", "s3cr3t!!"});
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys["***"], 3);
  EXPECT_EQ(keys["*** (2)"].get<int>() + keys["*** (3)"].get<int>(), 3);
  // A string root.
  json text = "hunter22";
  mask_secrets(text, {"hunter22"});
  EXPECT_EQ(text, "***");
}

TEST(SecretMask, DeepDocumentsAreWalkedWithoutRecursion) {
  std::size_t levels = 100000;
  json doc = json::parse(std::string(levels, '[') + "\"hunter22\"" + std::string(levels, ']'));
  mask_secrets(doc, {"hunter22"});
  const json* inner = &doc;
  while (inner->is_array()) inner = &(*inner)[0];
  EXPECT_EQ(*inner, "***");
}
