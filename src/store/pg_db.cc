#include "store/pg_db.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

#include <fmt/format.h>
#include <libpq-fe.h>

namespace vppd::store::pg {
namespace {

// The first line of a server message (the rest is DETAIL/HINT/context).
std::string FirstLine(const char* text) {
  std::string s = text != nullptr ? text : "";
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

// Statement text for an error message: its start only (it is SQL of this binary,
// never values, but long).
std::string_view Abbrev(std::string_view sql) { return sql.substr(0, std::min<std::size_t>(sql.size(), 80)); }

}  // namespace

Params& Params::Add(double value) {
  // Shortest text that reads back as the same double.
  values_.emplace_back(fmt::format("{}", value));
  return *this;
}

// --- Rows -----------------------------------------------------------------------

Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

Rows::~Rows() {
  if (result_ != nullptr) PQclear(result_);
}

int Rows::size() const { return result_ != nullptr ? PQntuples(result_) : 0; }

std::int64_t Rows::affected() const {
  const char* n = result_ != nullptr ? PQcmdTuples(result_) : "";
  std::int64_t v = 0;
  std::from_chars(n, n + std::char_traits<char>::length(n), v);
  return v;
}

bool Rows::IsNull(int row, int col) const { return PQgetisnull(result_, row, col) != 0; }

std::string Rows::Text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col), static_cast<std::size_t>(PQgetlength(result_, row, col)));
}

std::string_view Rows::View(int row, int col) const {
  return {PQgetvalue(result_, row, col), static_cast<std::size_t>(PQgetlength(result_, row, col))};
}

std::optional<std::string> Rows::OptText(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Text(row, col);
}

std::int64_t Rows::Int(int row, int col) const {
  if (IsNull(row, col)) return 0;
  const char* v = PQgetvalue(result_, row, col);
  std::int64_t out = 0;
  std::from_chars(v, v + PQgetlength(result_, row, col), out);
  return out;
}

bool Rows::Bool(int row, int col) const {
  if (IsNull(row, col)) return false;
  return PQgetvalue(result_, row, col)[0] == 't';
}

// --- Connection -------------------------------------------------------------------

Result<std::unique_ptr<Connection>> Connection::Open(const ConnectOptions& options) {
  // libpq counts the connect timeout in whole seconds (at least 2).
  std::string timeout = std::to_string(std::max(2, (options.connect_timeout_ms + 999) / 1000));
  // The server's statement_timeout cannot help when the server itself is gone
  // (a crash, a partition): without these a read on the socket would wait
  // forever. TCP keepalives notice an idle dead peer in ~11 s, tcp_user_timeout
  // one that stops acknowledging what we sent.
  std::string user_timeout = std::to_string(options.statement_timeout_ms + 5000);
  // expand_dbname: the URL is expanded in place, overriding the keywords before
  // it (application_name and the TCP settings: the URL may set its own) and
  // overridden by those after it.
  const char* keys[] = {"application_name", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                        "tcp_user_timeout", "dbname",     "connect_timeout", "client_encoding",     nullptr};
  const char* values[] = {"vppd",          "1",    "5",    "2", "3", user_timeout.c_str(), options.url.c_str(),
                          timeout.c_str(), "UTF8", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  if (conn == nullptr) return Fail(Error::Unavailable("store: out of memory connecting to PostgreSQL"));
  if (PQstatus(conn) != CONNECTION_OK) {
    // libpq's message names host and port, never the password.
    std::string why = FirstLine(PQerrorMessage(conn));
    PQfinish(conn);
    return Fail(Error::Unavailable(fmt::format("store: cannot connect to PostgreSQL: {}", why)));
  }
  std::unique_ptr<Connection> c(new Connection(conn));
  // SET takes no parameters; both numbers are integers of this binary's options.
  if (Status s = c->Simple(fmt::format("SET statement_timeout = {}; SET lock_timeout = {}; SET TIME ZONE 'UTC'",
                                       options.statement_timeout_ms, options.lock_timeout_ms));
      !s) {
    return Fail(s.error());
  }
  return c;
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::broken() const { return marked_broken_ || PQstatus(conn_) != CONNECTION_OK; }

Error Connection::MapError(pg_result* result, std::string_view sql) {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  last_sqlstate_ = state != nullptr ? state : "";
  std::string message = FirstLine(result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  if (message.empty()) message = FirstLine(PQerrorMessage(conn_));
  if (PQstatus(conn_) != CONNECTION_OK || last_sqlstate_.empty()) {
    return Error::Unavailable(fmt::format("store: the PostgreSQL connection failed ({}): {}", Abbrev(sql), message));
  }
  std::string text = fmt::format("store: PostgreSQL {} ({}): {}", last_sqlstate_, Abbrev(sql), message);
  const std::string& s = last_sqlstate_;
  if (s == "57014") return Error{Code::kDeadlineExceeded, std::move(text), {}, {}, 0};  // statement_timeout
  if (s == "55P03" || IsRetryable(s)) return Error::Unavailable(std::move(text));       // lock wait, lost race
  if (s.starts_with("08") || s.starts_with("53") || s.starts_with("57") || s == "40003") {
    // Connection exceptions, insufficient resources, operator intervention (shutdown).
    return Error::Unavailable(std::move(text));
  }
  if (s == "23505") return Error::AlreadyExists(std::move(text));
  if (s.starts_with("22")) return Error::InvalidArgument(std::move(text));  // data exception: bad text, overflow
  return Error::Internal(std::move(text));
}

Result<Rows> Connection::Check(pg_result* result, std::string_view sql) {
  Rows rows(result);
  ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
    last_sqlstate_.clear();
    return rows;
  }
  return Fail(MapError(result, sql));
}

namespace {

// Text parameters are NUL-terminated for libpq, and PostgreSQL text cannot hold
// NUL anyway: refuse rather than let libpq cut the value short.
Status CheckNoNul(const Params& params) {
  for (const std::optional<std::string>& v : params.values()) {
    if (v && v->find('\0') != std::string::npos) {
      return Fail(Error::InvalidArgument("store: text may not contain NUL characters"));
    }
  }
  return {};
}

std::vector<const char*> Pointers(const Params& params) {
  std::vector<const char*> out;
  out.reserve(params.size());
  for (const std::optional<std::string>& v : params.values()) out.push_back(v ? v->c_str() : nullptr);
  return out;
}

}  // namespace

Result<Rows> Connection::Exec(std::string_view sql, const Params& params) {
  if (Status s = CheckNoNul(params); !s) return Fail(s.error());
  std::string key(sql);
  auto it = prepared_.find(key);
  if (it == prepared_.end()) {
    std::string name = fmt::format("vppd_{}", prepared_.size() + 1);
    Result<Rows> prepared = Check(PQprepare(conn_, name.c_str(), key.c_str(), 0, nullptr), sql);
    if (!prepared) return prepared;
    it = prepared_.emplace(std::move(key), std::move(name)).first;
  }
  std::vector<const char*> values = Pointers(params);
  return Check(
      PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0),
      sql);
}

Result<Rows> Connection::ExecDynamic(const std::string& sql, const Params& params) {
  if (Status s = CheckNoNul(params); !s) return Fail(s.error());
  std::vector<const char*> values = Pointers(params);
  return Check(
      PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0),
      sql);
}

Status Connection::Simple(const std::string& sql) {
  Result<Rows> r = Check(PQexec(conn_, sql.c_str()), sql);
  if (!r) return Fail(r.error());
  return {};
}

// --- Pool -------------------------------------------------------------------------

Result<Pool::Lease> Pool::Acquire() {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, wait_, [this] { return !idle_.empty() || open_ < max_size_; })) {
    return Fail(Error::Unavailable(
        fmt::format("store busy: no PostgreSQL connection free within {} ms ({} open)", wait_.count(), open_)));
  }
  if (!idle_.empty()) {
    std::unique_ptr<Connection> conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }
  ++open_;  // reserved while connecting, outside the lock
  lock.unlock();
  Result<std::unique_ptr<Connection>> conn = Connection::Open(options_);
  if (!conn) {
    lock.lock();
    --open_;
    lock.unlock();
    cv_.notify_one();
    return Fail(conn.error());
  }
  return Lease(this, std::move(*conn));
}

void Pool::Release(std::unique_ptr<Connection> conn) {
  {
    std::lock_guard lock(mu_);
    if (conn->broken()) {
      --open_;
    } else {
      idle_.push_back(std::move(conn));
    }
  }
  cv_.notify_one();
}

void Pool::DropIdle() {
  std::vector<std::unique_ptr<Connection>> dropped;
  {
    std::lock_guard lock(mu_);
    open_ -= static_cast<int>(idle_.size());
    dropped.swap(idle_);
  }
  cv_.notify_all();
}

std::string PgPlaceholders(std::string_view sql) {
  std::string out(sql);
  // Where the text from `i` on stops being SQL to rewrite: the end of a literal,
  // identifier or comment (out.size() when it never ends).
  auto skip_to = [&out](std::size_t i, std::string_view end) {
    std::size_t at = out.find(end, i);
    return at == std::string::npos ? out.size() : at + end.size() - 1;
  };
  for (std::size_t i = 0; i < out.size(); ++i) {
    const char ch = out[i];
    const char next = i + 1 < out.size() ? out[i + 1] : '\0';
    if (ch == '\'' || ch == '"') {
      // To the closing quote; a doubled quote inside closes and reopens, the same.
      i = skip_to(i + 1, std::string_view(&ch, 1));
    } else if (ch == '-' && next == '-') {
      i = skip_to(i + 2, "\n");
    } else if (ch == '/' && next == '*') {
      i = skip_to(i + 2, "*/");
    } else if (ch == '?' && std::isdigit(static_cast<unsigned char>(next))) {
      out[i] = '$';
    }
  }
  return out;
}

}  // namespace vppd::store::pg
