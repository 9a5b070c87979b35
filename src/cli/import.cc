#include "cli/import.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "base/base.h"
#include "service/service.h"

namespace vppd::cli {
namespace {

// --- reading rows ---------------------------------------------------------------------

// A record's cells by column name; a column the header lacks reads as absent.
class Row {
 public:
  Row(const std::map<std::string, std::size_t>& columns, const CsvRecord& record)
      : columns_(columns), record_(record) {}
  int line() const { return record_.line; }
  // The cell, trimmed; nullopt when the column is absent or the cell empty.
  std::optional<std::string> Get(const std::string& column) const {
    auto it = columns_.find(column);
    if (it == columns_.end() || it->second >= record_.fields.size()) return std::nullopt;
    std::string value = record_.fields[it->second];
    const auto first = value.find_first_not_of(" \t");
    if (first == std::string::npos) return std::nullopt;
    value = value.substr(first, value.find_last_not_of(" \t") - first + 1);
    return value;
  }

 private:
  const std::map<std::string, std::size_t>& columns_;
  const CsvRecord& record_;
};

// Collects the reasons rows are bad, each with its line.
struct Problems {
  std::string file;
  std::vector<std::string> lines;
  void Add(int line, const std::string& why) { lines.push_back(fmt::format("{}:{}: {}", file, line, why)); }
};

std::optional<bool> ParseBool(const std::string& v) {
  std::string lower = v;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  return std::nullopt;
}

std::string Lower(std::string v) {
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v;
}

std::size_t Characters(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The checks of one row: required cells, lengths, GUIDs, booleans.
class Checker {
 public:
  Checker(const Row& row, Problems& problems) : row_(row), problems_(problems) {}
  bool ok() const { return ok_; }

  std::optional<std::string> Text(const std::string& column, std::size_t max, bool required = false) {
    std::optional<std::string> v = row_.Get(column);
    if (!v) {
      if (required) Bad(fmt::format("{} is required", column));
      return v;
    }
    if (Characters(*v) > max) Bad(fmt::format("{} is longer than {} characters", column, max));
    return v;
  }
  std::optional<std::string> Guid(const std::string& column, bool required = false) {
    std::optional<std::string> v = row_.Get(column);
    if (!v) {
      if (required) Bad(fmt::format("{} is required", column));
      return v;
    }
    if (!IsGuid(*v)) {
      Bad(fmt::format("{} '{}' is not a GUID", column, v->substr(0, 64)));
      return std::nullopt;
    }
    return Lower(*v);
  }
  std::optional<bool> Bool(const std::string& column) {
    std::optional<std::string> v = row_.Get(column);
    if (!v) return std::nullopt;
    std::optional<bool> b = ParseBool(*v);
    if (!b) Bad(fmt::format("{} must be true or false, not '{}'", column, v->substr(0, 32)));
    return b;
  }
  void Bad(const std::string& why) {
    ok_ = false;
    problems_.Add(row_.line(), why);
  }

 private:
  const Row& row_;
  Problems& problems_;
  bool ok_ = true;
};

const std::vector<std::string> kDeviceColumns = {
    "deviceId",   "displayName", "operatingSystem", "operatingSystemVersion", "accountEnabled", "serialNumber",
    "deviceName", "model",       "osVersion",       "userPrincipalName",      "userId"};
const std::vector<std::string> kUserColumns = {"userPrincipalName", "displayName", "mail",          "givenName",
                                               "surname",           "jobTitle",    "accountEnabled"};
const std::vector<std::string> kGroupColumns = {"id",          "displayName",     "description", "mailNickname",
                                                "mailEnabled", "securityEnabled", "members"};

// The rows of each kind, with their lines (to name a row the store refused).
struct Parsed {
  std::vector<store::User> users;
  std::vector<store::ImportedDevice> devices;
  std::vector<store::ImportedGroup> groups;
  std::vector<int> lines;
};

void ParseDevice(const Row& row, Problems& problems, Parsed& out) {
  Checker c(row, problems);
  store::ImportedDevice d;
  d.device.device_id = c.Guid("deviceId", true).value_or("");
  d.device.display_name = c.Text("displayName", service::kMaxDisplayName);
  d.device.operating_system = c.Text("operatingSystem", service::kMaxDeviceText);
  d.device.operating_system_version = c.Text("operatingSystemVersion", service::kMaxDeviceText);
  d.device.account_enabled = c.Bool("accountEnabled").value_or(true);
  if (std::optional<std::string> serial = c.Text("serialNumber", service::kMaxDeviceText)) {
    store::ManagedDevice m;
    m.serial_number = serial;
    m.device_name = c.Text("deviceName", service::kMaxDeviceText);
    if (!m.device_name) m.device_name = d.device.display_name;
    m.model = c.Text("model", service::kMaxDeviceText);
    m.operating_system = d.device.operating_system;
    m.os_version = c.Text("osVersion", service::kMaxDeviceText);
    if (!m.os_version) m.os_version = d.device.operating_system_version;
    m.user_principal_name = c.Text("userPrincipalName", service::kMaxUserPrincipalName);
    m.user_id = c.Guid("userId");
    d.managed = std::move(m);
  } else {
    for (const char* only_managed : {"deviceName", "model", "osVersion", "userPrincipalName", "userId"}) {
      if (row.Get(only_managed))
        c.Bad(fmt::format("{} needs a serialNumber (it is the managed device's)", only_managed));
    }
  }
  if (!c.ok()) return;
  out.devices.push_back(std::move(d));
  out.lines.push_back(row.line());
}

void ParseUser(const Row& row, Problems& problems, Parsed& out) {
  Checker c(row, problems);
  store::User u;
  u.user_principal_name = c.Text("userPrincipalName", service::kMaxUserPrincipalName, true).value_or("");
  if (!u.user_principal_name.empty()) {
    const auto at = u.user_principal_name.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == u.user_principal_name.size() ||
        u.user_principal_name.find('@', at + 1) != std::string::npos ||
        u.user_principal_name.find(' ') != std::string::npos) {
      c.Bad(fmt::format("userPrincipalName '{}' is not alias@domain", u.user_principal_name.substr(0, 120)));
    }
  }
  u.display_name = c.Text("displayName", service::kMaxDisplayName);
  u.mail = c.Text("mail", service::kMaxMail);
  u.given_name = c.Text("givenName", service::kMaxPersonName);
  u.surname = c.Text("surname", service::kMaxPersonName);
  u.job_title = c.Text("jobTitle", service::kMaxJobTitle);
  u.account_enabled = c.Bool("accountEnabled").value_or(true);
  if (!c.ok()) return;
  out.users.push_back(std::move(u));
  out.lines.push_back(row.line());
}

void ParseGroup(const Row& row, bool has_members, Problems& problems, Parsed& out) {
  Checker c(row, problems);
  store::ImportedGroup g;
  g.group.id = c.Guid("id").value_or("");
  g.group.display_name = c.Text("displayName", service::kMaxDisplayName, true).value_or("");
  g.group.description = c.Text("description", service::kMaxGroupDescription);
  g.group.mail_nickname = c.Text("mailNickname", service::kMaxMailNickname);
  g.group.mail_enabled = c.Bool("mailEnabled").value_or(false);
  g.group.security_enabled = c.Bool("securityEnabled").value_or(true);
  if (has_members) {
    std::vector<std::string> members;
    std::stringstream list(row.Get("members").value_or(""));
    for (std::string ref; std::getline(list, ref, ';');) {
      const auto first = ref.find_first_not_of(" \t");
      if (first == std::string::npos) continue;
      members.push_back(ref.substr(first, ref.find_last_not_of(" \t") - first + 1));
    }
    g.members = std::move(members);
  }
  if (!c.ok()) return;
  out.groups.push_back(std::move(g));
  out.lines.push_back(row.line());
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(Error::NotFound(fmt::format("cannot read '{}'", path)));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<std::string> ChooseTenant(store::Store& store, const std::string& wanted) {
  if (!wanted.empty()) {
    auto tenant = store.GetTenant(wanted);
    if (!tenant) return Fail(tenant.error());
    return wanted;
  }
  auto tenants = store.ListTenants();
  if (!tenants) return Fail(tenants.error());
  if (tenants->size() != 1) {
    return Fail(
        Error::InvalidArgument(fmt::format("the store holds {} tenants: name one with --tenant", tenants->size())));
  }
  return tenants->front().id;
}

}  // namespace

Result<std::vector<CsvRecord>> ParseCsv(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a BOM, as spreadsheets write
  std::vector<CsvRecord> records;
  CsvRecord record;
  std::string field;
  int line = 1;
  record.line = 1;
  bool quoted = false, field_started = false;
  int quote_line = 0;
  auto end_field = [&] {
    record.fields.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_record = [&] {
    end_field();
    const bool blank = record.fields.size() == 1 && record.fields[0].empty();
    if (!blank) records.push_back(std::move(record));
    record = CsvRecord();
    record.line = line;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (quoted) {
      if (ch == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (ch == '\n') ++line;
        field += ch;
      }
      continue;
    }
    if (ch == '"' && !field_started) {
      quoted = true;
      field_started = true;
      quote_line = line;
    } else if (ch == ',') {
      end_field();
    } else if (ch == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      continue;
    } else if (ch == '\n') {
      ++line;
      end_record();
    } else {
      field += ch;
      field_started = true;
    }
  }
  if (quoted) return Fail(Error::InvalidArgument(fmt::format("line {}: a quoted field is never closed", quote_line)));
  if (field_started || !field.empty() || !record.fields.empty()) end_record();
  return records;
}

int RunImport(const ImportCommand& command, store::Store& store, std::FILE* out, std::FILE* err) {
  auto fail = [&](const Error& e) {
    std::fprintf(err, "vppd import: %s\n", e.message.c_str());
    return 1;
  };
  const std::vector<std::string>* known = command.kind == "devices"  ? &kDeviceColumns
                                          : command.kind == "users"  ? &kUserColumns
                                          : command.kind == "groups" ? &kGroupColumns
                                                                     : nullptr;
  if (known == nullptr) {
    return fail(Error::InvalidArgument("what to import must be devices, users or groups, not '" + command.kind + "'"));
  }
  auto tenant = ChooseTenant(store, command.tenant_id);
  if (!tenant) return fail(tenant.error());
  auto text = ReadFile(command.file);
  if (!text) return fail(text.error());
  auto records = ParseCsv(*text);
  if (!records) return fail(Error::InvalidArgument(command.file + ":" + records.error().message.substr(5)));
  if (records->empty()) return fail(Error::InvalidArgument(command.file + ": empty, without even a header line"));

  // The header: every column known, none twice (names as Graph spells them, any case).
  std::map<std::string, std::size_t> columns;
  const CsvRecord& header = records->front();
  for (std::size_t i = 0; i < header.fields.size(); ++i) {
    std::string name = header.fields[i];
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    auto it = std::find_if(known->begin(), known->end(), [&](const std::string& k) { return Lower(k) == Lower(name); });
    if (it == known->end()) {
      std::string list;
      for (const std::string& k : *known) list += (list.empty() ? "" : ", ") + k;
      return fail(Error::InvalidArgument(
          fmt::format("{}:{}: unknown column '{}' (the columns are {})", command.file, header.line, name, list)));
    }
    if (!columns.emplace(*it, i).second) {
      return fail(
          Error::InvalidArgument(fmt::format("{}:{}: column '{}' appears twice", command.file, header.line, *it)));
    }
  }

  Problems problems{command.file, {}};
  Parsed parsed;
  for (std::size_t r = 1; r < records->size(); ++r) {
    const CsvRecord& record = (*records)[r];
    if (record.fields.size() > header.fields.size()) {
      problems.Add(record.line, fmt::format("{} fields, but the header names {} columns", record.fields.size(),
                                            header.fields.size()));
      continue;
    }
    Row row(columns, record);
    if (command.kind == "devices") ParseDevice(row, problems, parsed);
    if (command.kind == "users") ParseUser(row, problems, parsed);
    if (command.kind == "groups") ParseGroup(row, columns.count("members") > 0, problems, parsed);
  }
  if (!problems.lines.empty()) {
    for (const std::string& p : problems.lines) std::fprintf(err, "%s\n", p.c_str());
    std::fprintf(err, "vppd import: %zu bad row(s); nothing imported\n", problems.lines.size());
    return 1;
  }

  const auto started = std::chrono::steady_clock::now();
  Result<store::ImportCounts> counts = command.kind == "devices" ? store.ImportDevices(*tenant, parsed.devices)
                                       : command.kind == "users" ? store.ImportUsers(*tenant, parsed.users)
                                                                 : store.ImportGroups(*tenant, parsed.groups);
  if (!counts) {
    Error e = counts.error();
    // The store names a bad row by its index: the file names it by its line.
    if (e.code == Code::kInvalidArgument && !e.target.empty() &&
        std::all_of(e.target.begin(), e.target.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
      const std::size_t index = std::stoul(e.target);
      const std::string reason = e.message.substr(e.message.find(": ") + 2);
      if (index < parsed.lines.size()) {
        std::fprintf(err, "%s:%d: %s\n", command.file.c_str(), parsed.lines[index], reason.c_str());
        std::fprintf(err, "vppd import: 1 bad row; nothing imported\n");
        return 1;
      }
    }
    return fail(e);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(out, "imported %zu %s into tenant %s in %.2f s: %lld objects created, %lld updated", parsed.lines.size(),
               command.kind.c_str(), tenant->c_str(), seconds, static_cast<long long>(counts->created),
               static_cast<long long>(counts->updated));
  if (command.kind == "groups") {
    std::fprintf(out, ", %lld members added, %lld removed", static_cast<long long>(counts->members_added),
                 static_cast<long long>(counts->members_removed));
  }
  std::fprintf(out, "\n");
  // As after a change through Graph: the tenant's tokens are reconciled with the
  // directory now (a running vppd serve picks the jobs up; nothing to do for a
  // token without assignments).
  service::QueueingReconcileTrigger(store, {}).TenantNeedsReconcile(*tenant);
  return 0;
}

}  // namespace vppd::cli
