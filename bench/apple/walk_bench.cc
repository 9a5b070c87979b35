// apple_walk_bench: times apple::Client's full /assignments walk against a
// running simulator (bench/apple/run starts one with 1,000,000 assignments),
// and the parse share of it.
//
//   apple_walk_bench --url http://127.0.0.1:PORT/mdm/v2 --token-file F [--repeat N] [--skip-parse]
//
// Prints one line per measurement, `key value` pairs, for bench/apple/run.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>

#include <curl/curl.h>
#include <sys/resource.h>

#include "apple/client.h"
#include "apple/parse.h"
#include "apple/transport.h"

using namespace vppd;
using Steady = std::chrono::steady_clock;

namespace {

std::size_t Collect(char* d, std::size_t s, std::size_t n, void* u) {
  static_cast<std::string*>(u)->append(d, s * n);
  return s * n;
}

// One raw page, to time parsing alone.
std::string FetchPage(const std::string& url, const std::string& stoken) {
  CURL* e = curl_easy_init();
  std::string body;
  const std::string auth = "Authorization: Bearer " + stoken;
  curl_slist* h = curl_slist_append(nullptr, auth.c_str());
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Collect);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
  curl_easy_perform(e);
  curl_slist_free_all(h);
  curl_easy_cleanup(e);
  return body;
}

// User + system CPU time of this process: on the shared machine the wall time
// moves with other load; the CPU the walk costs much less so.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, token_file;
  int repeat = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--url"))
      url = argv[i + 1];
    else if (!std::strcmp(argv[i], "--token-file"))
      token_file = argv[i + 1];
    else if (!std::strcmp(argv[i], "--repeat"))
      repeat = std::atoi(argv[i + 1]);
  }
  bool skip_parse = false;  // --skip-parse: only the walk(s)
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--skip-parse")) skip_parse = true;
  auto stoken = ReadFile(token_file);
  if (url.empty() || !stoken) {
    std::fprintf(stderr, "usage: apple_walk_bench --url URL --token-file FILE [--repeat N] [--skip-parse]\n");
    return 2;
  }
  apple::ClientOptions o;
  o.base_url = url;
  o.allow_insecure_http = true;
  o.stoken = *stoken;
  auto client = apple::Client::Create(o);
  if (!client) {
    std::fprintf(stderr, "%s\n", client.error().Describe().c_str());
    return 1;
  }
  // The rate cap comes from the service config (the run script raises it).
  if (auto sc = (*client)->GetServiceConfig(); !sc) {
    std::fprintf(stderr, "%s\n", sc.error().Describe().c_str());
    return 1;
  }
  if (!skip_parse) {
    std::string token(*stoken);
    while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
    const std::string body = FetchPage(url + "/assignments?pageIndex=1", token);
    apple::internal::PageParser parser;
    constexpr int kRounds = 200;
    std::size_t n = 0;
    const auto start = Steady::now();
    // One vector for all rounds, as a walk hands delivered pages' vectors back
    // to the parser.
    std::vector<apple::AssignmentRef> items;
    std::deque<std::string> decoded;
    for (int i = 0; i < kRounds; ++i) {
      apple::internal::PageMeta meta;
      decoded.clear();
      if (auto s = parser.Assignments(body, &meta, &items, &decoded); !s) {
        std::fprintf(stderr, "parse: %s\n", s.error().Describe().c_str());
        return 1;
      }
      n += items.size();
    }
    const double secs = std::chrono::duration<double>(Steady::now() - start).count();
    std::printf("parse_page_ms %.3f page_bytes %zu items_per_page %zu parse_mb_per_s %.0f\n", secs * 1000 / kRounds,
                body.size(), n / kRounds, body.size() * kRounds / secs / 1e6);
  }
  for (int r = 0; r < repeat; ++r) {
    std::int64_t items = 0;
    const double cpu_start = CpuSeconds();
    const auto start = Steady::now();
    auto walk = (*client)->WalkAssignments({}, [&](const apple::AssignmentsPage& p) -> Status {
      items += static_cast<std::int64_t>(p.items.size());
      return {};
    });
    const double secs = std::chrono::duration<double>(Steady::now() - start).count();
    const double cpu = CpuSeconds() - cpu_start;
    if (!walk) {
      std::fprintf(stderr, "%s\n", walk.error().Describe().c_str());
      return 1;
    }
    std::printf("client_walk_seconds %.3f cpu_seconds %.3f items %lld pages %d max_in_flight %d\n", secs, cpu,
                static_cast<long long>(items), walk->pages_delivered, walk->max_in_flight);
  }
  return 0;
}
