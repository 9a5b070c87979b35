#include <boost/json.hpp>

#include "apple/client.h"

namespace vppd::apple {
namespace {

std::string_view Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

Result<std::string> RequiredString(const boost::json::object& obj, const char* field) {
  const auto* v = obj.if_contains(field);
  if (v == nullptr) return Fail(Error::InvalidArgument(std::string("the sToken has no '") + field + "' field"));
  if (!v->is_string()) return Fail(Error::InvalidArgument(std::string("the sToken's '") + field + "' is not a string"));
  if (v->get_string().empty())
    return Fail(Error::InvalidArgument(std::string("the sToken's '") + field + "' is empty"));
  return std::string(v->get_string());
}

}  // namespace

Result<STokenInfo> DecodeSToken(std::string_view stoken) {
  const std::string_view text = Trim(stoken);
  if (text.empty()) return Fail(Error::InvalidArgument("the sToken is empty"));
  // An sToken file is tens to hundreds of bytes; anything huge is not one.
  if (text.size() > 16 * 1024) return Fail(Error::InvalidArgument("the sToken is longer than 16384 characters"));
  auto json_text = Base64Decode(text);
  if (!json_text) return Fail(Error::InvalidArgument("the sToken is not base64: " + json_text.error().message));
  boost::system::error_code ec;
  boost::json::value doc = boost::json::parse(*json_text, ec);
  if (ec) return Fail(Error::InvalidArgument("the sToken does not decode to JSON: " + ec.message()));
  if (!doc.is_object()) return Fail(Error::InvalidArgument("the sToken does not decode to a JSON object"));
  const auto& obj = doc.get_object();
  STokenInfo info;
  auto token = RequiredString(obj, "token");
  if (!token) return Fail(token.error());
  auto exp = RequiredString(obj, "expDate");
  if (!exp) return Fail(exp.error());
  auto org = RequiredString(obj, "orgName");
  if (!org) return Fail(org.error());
  auto when = ParseIso8601(*exp);
  if (!when) return Fail(Error::InvalidArgument("the sToken's expDate is invalid: " + when.error().message));
  info.token = std::move(*token);
  info.expiration = *when;
  info.org_name = std::move(*org);
  return info;
}

std::string EncodeSToken(std::string_view token, Timestamp expiration, std::string_view org_name) {
  // Apple writes expDate with a colon-less offset ("2030-11-08T22:33:22+0000").
  std::string exp = FormatIso8601(expiration - expiration % 1'000'000);
  exp.pop_back();  // 'Z'
  exp += "+0000";
  boost::json::object obj;
  obj["token"] = token;
  obj["expDate"] = exp;
  obj["orgName"] = org_name;
  return Base64Encode(boost::json::serialize(obj));
}

}  // namespace vppd::apple
