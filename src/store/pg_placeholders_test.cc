// pg::PgPlaceholders: the shared SQL's ?N as PostgreSQL's $N, and only where it
// is a placeholder (no database needed).
#include <string>

#include <gtest/gtest.h>

#include "store/pg_db.h"

namespace vppd::store::pg {
namespace {

TEST(PgPlaceholdersTest, RewritesNumberedPlaceholders) {
  EXPECT_EQ(PgPlaceholders("SELECT a FROM t WHERE x = ?1 AND y = ?2"), "SELECT a FROM t WHERE x = $1 AND y = $2");
  EXPECT_EQ(PgPlaceholders("VALUES (?10, ?11)"), "VALUES ($10, $11)") << "more than one digit";
  EXPECT_EQ(PgPlaceholders("x=?1"), "x=$1") << "no space around it";
  EXPECT_EQ(PgPlaceholders("?1"), "$1");
  EXPECT_EQ(PgPlaceholders("SELECT ?1::bigint"), "SELECT $1::bigint");
  EXPECT_EQ(PgPlaceholders(""), "");
}

TEST(PgPlaceholdersTest, LeavesAQuestionMarkThatIsNoPlaceholder) {
  EXPECT_EQ(PgPlaceholders("data ? 'key'"), "data ? 'key'") << "jsonb's ? operator";
  EXPECT_EQ(PgPlaceholders("data ?| ?1"), "data ?| $1");
  EXPECT_EQ(PgPlaceholders("x = ??1"), "x = ?$1") << "only the ? before the digit";
  EXPECT_EQ(PgPlaceholders("x = ?"), "x = ?") << "at the end of the text";
}

TEST(PgPlaceholdersTest, LeavesLiteralsAlone) {
  EXPECT_EQ(PgPlaceholders("SELECT '?1', ?1"), "SELECT '?1', $1");
  EXPECT_EQ(PgPlaceholders("SELECT 'what?? ?2 ?', ?3"), "SELECT 'what?? ?2 ?', $3");
  EXPECT_EQ(PgPlaceholders("SELECT 'it''s ?1', ?2"), "SELECT 'it''s ?1', $2") << "a doubled quote";
  EXPECT_EQ(PgPlaceholders("SELECT '''?1''', ?2"), "SELECT '''?1''', $2") << "quotes at both ends";
  EXPECT_EQ(PgPlaceholders("SELECT '', ?1"), "SELECT '', $1") << "the empty literal";
  EXPECT_EQ(PgPlaceholders("SELECT '\"?1', ?2"), "SELECT '\"?1', $2") << "a double quote inside a literal";
  EXPECT_EQ(PgPlaceholders("SELECT '-- ?1', ?2"), "SELECT '-- ?1', $2") << "no comment inside a literal";
  EXPECT_EQ(PgPlaceholders("SELECT 'open ?1"), "SELECT 'open ?1") << "unterminated: nothing after it rewritten";
}

TEST(PgPlaceholdersTest, LeavesQuotedIdentifiersAlone) {
  EXPECT_EQ(PgPlaceholders("SELECT \"col?1\" FROM t WHERE a = ?1"), "SELECT \"col?1\" FROM t WHERE a = $1");
  EXPECT_EQ(PgPlaceholders("SELECT \"a\"\"?1\", ?2"), "SELECT \"a\"\"?1\", $2") << "a doubled quote";
  EXPECT_EQ(PgPlaceholders("SELECT \"it's\", ?1, '?2'"), "SELECT \"it's\", $1, '?2'")
      << "a single quote inside an identifier opens no literal";
  EXPECT_EQ(PgPlaceholders("x COLLATE \"C\" = ?1"), "x COLLATE \"C\" = $1");
}

TEST(PgPlaceholdersTest, LeavesCommentsAlone) {
  EXPECT_EQ(PgPlaceholders("SELECT ?1 -- not ?2\nFROM t WHERE b = ?2"), "SELECT $1 -- not ?2\nFROM t WHERE b = $2");
  EXPECT_EQ(PgPlaceholders("SELECT ?1 -- to the end ?2"), "SELECT $1 -- to the end ?2");
  EXPECT_EQ(PgPlaceholders("SELECT /* ?1 'x */ ?2"), "SELECT /* ?1 'x */ $2") << "a quote inside a comment";
  EXPECT_EQ(PgPlaceholders("SELECT /* open ?1"), "SELECT /* open ?1");
  EXPECT_EQ(PgPlaceholders("SELECT 5-?1, 6/?2"), "SELECT 5-$1, 6/$2") << "one '-' or '/' is an operator";
  EXPECT_EQ(PgPlaceholders("SELECT 5 - -?1"), "SELECT 5 - -$1");
}

}  // namespace
}  // namespace vppd::store::pg
