// The Apple users of a location (users/create, the invitation, users/retire):
// the part of a reconcile pass that makes Apple hold a registered user for each
// directory user a user licence is meant for (sync_internal.h: ReconcileAppleUsers).
//
// Layout: 1. settle the user events due  2. decide  3. create and retire
// 4. refresh from GET /users.
//
// Durable as the device licences are: a user about to be sent is written
// first (creating / retiring, no event), the event is recorded the moment Apple
// accepted it, and a row still without an event at the next pass is sent again.
// Apple answers a create sent twice with 9716 and a retire sent twice with 9618
// or 9609 for that user, which the store counts as done; so a kill -9 anywhere
// loses nothing and registers no one twice.
#include <algorithm>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "sync/jobs.h"
#include "sync/sync_internal.h"

namespace vppd::sync {
namespace {

Timestamp Micros(std::chrono::milliseconds d) { return d.count() * 1000; }

bool IsUserEvent(const store::AppleEvent& e) { return e.kind == "createUsers" || e.kind == "retireUsers"; }

// The email vppd registers a directory user with: mail, else userPrincipalName.
std::string EmailOf(const store::User& u) { return u.mail && !u.mail->empty() ? *u.mail : u.user_principal_name; }

// urls.invitationEmail with the code put in (Apple's template names it %25inviteCode%25).
std::string InviteUrl(const std::string& url_template, const std::string& code) {
  if (url_template.empty() || code.empty()) return "";
  std::string url = url_template;
  for (const std::string placeholder : {"%25inviteCode%25", "%inviteCode%"}) {
    const auto at = url.find(placeholder);
    if (at != std::string::npos) return url.replace(at, placeholder.size(), code);
  }
  return url;
}

struct Pass {
  JobContext& ctx;
  apple::Client& client;
  const std::string& tenant;
  const std::string& token_id;
  AppleUsersPass out;

  Result<std::map<std::string, store::AppleUser>> Rows() {
    auto rows = ctx.store.ListAppleUsers(tenant, token_id);
    if (!rows) return Fail(rows.error());
    std::map<std::string, store::AppleUser> by_id;
    for (auto& r : *rows) by_id.emplace(r.client_user_id, std::move(r));
    return by_id;
  }

  // --- 1. settle the user events due ---------------------------------------------------
  // True when one ended (the rows moved).
  Result<bool> SettleDue() {
    auto events = ctx.store.ListAppleEvents(tenant, token_id);
    if (!events) return Fail(events.error());
    const Timestamp now = ctx.clock.Now();
    bool settled = false;
    for (const store::AppleEvent& e : *events) {
      if (!IsUserEvent(e) || e.next_poll > now || ctx.stopping) continue;
      auto status = client.GetEventStatus(e.event_id);
      store::AppleEventOutcome outcome;
      if (!status) {
        if (status.error().error_number != 9708) return Fail(status.error().ToError());
        outcome.abandoned = true;  // Apple does not know it (any more): send again
      } else if (status->Pending()) {
        if (now - e.submitted < Micros(ctx.options.event_max_wait)) {
          if (auto s = ctx.store.DeferAppleEvent(tenant, token_id, e.event_id,
                                                 now + Micros(ctx.options.event_poll_interval));
              !s && s.error().code != Code::kNotFound) {
            return Fail(s.error());
          }
          continue;
        }
        outcome.abandoned = true;
      } else {
        outcome = EventOutcome(*status);
      }
      auto done = ctx.store.CompleteAppleEvent(tenant, token_id, e.event_id, outcome);
      if (!done && done.error().code != Code::kNotFound) return Fail(done.error());
      settled = true;  // by this poll, or a notification a moment before
    }
    return settled;
  }

  // --- 3. create and retire ------------------------------------------------------------
  // Sends `ids` (rows already written as creating/retiring without an event) in
  // chunks of maxUsers and records each accepted event. A chunk Apple refuses
  // outright (a bad email: 9717) fails its users; anything else stops the pass.
  Status Send(bool create, const std::vector<std::string>& ids, std::map<std::string, store::AppleUser>& rows,
              int max_users, Timestamp first_poll) {
    const std::size_t step = static_cast<std::size_t>(std::max(1, max_users));
    for (std::size_t i = 0; i < ids.size() && !ctx.stopping; i += step) {
      std::vector<std::string> chunk(ids.begin() + static_cast<std::ptrdiff_t>(i),
                                     ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + step)));
      apple::AppleResult<apple::EventResponse> event;
      if (create) {
        std::vector<apple::ManagedUser> users;
        for (const std::string& id : chunk) users.push_back({id, rows[id].email, ""});
        event = client.CreateUsers(users);
      } else {
        event = client.RetireUsers(chunk);
      }
      const Timestamp now = ctx.clock.Now();
      if (!event) {
        if (event.error().kind != apple::AppleErrorKind::kValidation) return Fail(event.error().ToError());
        std::vector<store::AppleUserUpdate> refused;
        for (const std::string& id : chunk) {
          store::AppleUser& r = rows[id];
          store::AppleUserUpdate& u = refused.emplace_back(store::AppleUserUpdate{r, r});
          if (create) u.after.status = "failed";
          u.after.error_code = std::to_string(event.error().error_number);
          u.after.error_message = (create ? "" : "retire failed: ") + event.error().error_message;
          u.after.updated = now;
          r = u.after;
        }
        // A row a notification moved meanwhile keeps its newer word.
        if (auto s = ctx.store.UpdateAppleUsers(tenant, token_id, refused); !s) return Fail(s.error());
        continue;
      }
      store::AppleEvent recorded;
      recorded.event_id = event->event_id;
      recorded.kind = create ? "createUsers" : "retireUsers";
      recorded.submitted = now;
      recorded.next_poll = now + first_poll;
      if (auto ok = ctx.store.RecordAppleEvent(tenant, token_id, recorded, chunk, ""); !ok) {
        // The rows stay creating/retiring without an event: the next pass sends them again.
        spdlog::warn("token {}: Apple event {} ({} users) accepted but not recorded: {}; the next pass sends it again",
                     token_id, event->event_id, chunk.size(), ok.error().message);
        return ok;
      }
      for (const std::string& id : chunk) rows[id].event_id = event->event_id;
      (create ? out.created : out.retired) += static_cast<std::int64_t>(chunk.size());
    }
    return {};
  }

  // --- 4. refresh from GET /users --------------------------------------------------------
  // Walks the users changed since the last walk (all of them the first time, or
  // when Apple no longer knows the version) and takes Apple's word for vppd's
  // rows not in flight: Registered with its invitation, Associated with its
  // idHash, Retired. Users vppd has no row for are another MDM's: left alone.
  Status Refresh(std::map<std::string, store::AppleUser>& rows, const std::string& invitation_template) {
    auto version = ctx.store.GetAppleUsersVersion(tenant, token_id);
    if (!version) return Fail(version.error());
    std::vector<store::AppleUserUpdate> changed;
    const Timestamp now = ctx.clock.Now();
    // A user passed over while in flight must show in the next walk again.
    bool passed_over = false;
    auto on_page = [&](const apple::UsersPage& page) -> Status {
      for (const apple::User& u : page.items) {
        auto it = rows.find(u.client_user_id);
        if (it == rows.end()) continue;
        store::AppleUser next = it->second;
        if (!next.event_id.empty() || next.status == "creating" || next.status == "retiring") {
          passed_over = true;  // its event says how it ends, or it is to be sent again
          continue;
        }
        if (u.status == "Registered") {
          next.status = "Registered";
          next.invite_code = u.invite_code;
          next.invite_url = InviteUrl(invitation_template, u.invite_code);
        } else if (u.status == "Associated") {
          next.status = "Associated";
          next.id_hash = u.id_hash;
          next.invite_code.clear();
          next.invite_url.clear();
        } else if (u.status == "Retired") {
          next.status = "Retired";
          next.invite_code.clear();
          next.invite_url.clear();
        } else {
          continue;
        }
        if (!u.email.empty()) next.email = u.email;
        next.error_code.clear();
        next.error_message.clear();
        if (next == it->second) continue;
        next.updated = now;
        changed.push_back({it->second, next});
        it->second = next;
      }
      return {};
    };
    apple::UserFilter filter;
    filter.since_version_id = *version;
    auto walked = client.WalkUsers(filter, on_page);
    if (!walked && walked.error().kind == apple::AppleErrorKind::kVersionIdInvalid) {
      filter.since_version_id.clear();
      walked = client.WalkUsers(filter, on_page);
    }
    if (!walked) return Fail(walked.error().ToError());
    // A row a notification moved since it was read (the person accepted while
    // the walk ran) keeps that newer word; the walk's view of it is not complete.
    auto left_alone = ctx.store.UpdateAppleUsers(tenant, token_id, changed);
    if (!left_alone) return Fail(left_alone.error());
    if (!left_alone->empty()) {
      passed_over = true;
      auto now_rows = Rows();
      if (!now_rows) return Fail(now_rows.error());
      rows = std::move(*now_rows);
    }
    // A walk whose data moved under it, or that passed users over, is not a
    // complete view: the next one starts from the same version again.
    if (!walked->version_changed && !passed_over && !walked->version_id.empty() && walked->version_id != *version) {
      if (auto s = ctx.store.PutAppleUsersVersion(tenant, token_id, walked->version_id); !s) return s;
    }
    return {};
  }
};

}  // namespace

Result<AppleUsersPass> ReconcileAppleUsers(JobContext& ctx, apple::Client& client, const store::VppToken& token,
                                           const std::set<std::string>& wanted_user_ids) {
  const std::string& tenant = ctx.job.tenant_id;
  const std::string& token_id = token.id;
  Pass pass{ctx, client, tenant, token_id, {}};

  // 1. The user events due.
  auto settled = pass.SettleDue();
  if (!settled) return Fail(settled.error());
  auto rows = pass.Rows();
  if (!rows) return Fail(rows.error());

  // 2. Decide. The directory is read only when a user may need registering or retiring.
  const bool reclaim = ctx.options.reconcile.reclaim;
  bool need_directory = false;
  for (const std::string& id : wanted_user_ids) {
    auto it = rows->find(id);
    if (it == rows->end() || it->second.status == "failed" || it->second.status == "Retired") need_directory = true;
  }
  for (const auto& [id, r] : *rows) {
    if (r.user_id.empty() || wanted_user_ids.count(r.user_id)) continue;
    if (r.status == "Registered" || r.status == "Associated" || r.status == "retiring" ||
        (r.status == "creating" && r.event_id.empty())) {
      need_directory |= reclaim;
    }
  }
  std::map<std::string, std::string> email_of;  // directory user id → email, of every user when read
  if (need_directory) {
    store::ListQuery query;
    query.limit = 10'000;
    for (;;) {
      auto page = ctx.store.ListUsers(tenant, query);
      if (!page) return Fail(page.error());
      for (const store::User& u : page->items) email_of.emplace(u.id, EmailOf(u));
      if (!page->has_more) break;
      query.skip += query.limit;
    }
  }

  const Timestamp now = ctx.clock.Now();
  std::vector<std::string> to_create, to_retire;
  // Every user about to be sent, written from the row as read: one a
  // notification moved meanwhile is not sent (UpdateAppleUsers).
  std::vector<store::AppleUserUpdate> intents;
  auto resend = [&](const store::AppleUser& r, std::vector<std::string>& to) {
    store::AppleUser again = r;
    again.updated = now;
    intents.push_back({r, again});
    to.push_back(r.client_user_id);
  };
  for (const std::string& id : wanted_user_ids) {
    auto it = rows->find(id);
    const auto email = email_of.find(id);
    if (it != rows->end() && it->second.status == "creating" && it->second.event_id.empty()) {
      resend(it->second, to_create);  // written, never accepted (or abandoned): send again
      continue;
    }
    if (email == email_of.end()) continue;  // has a row that needs nothing, or is no directory user
    const bool again = it != rows->end() && ((it->second.status == "failed" && it->second.email != email->second) ||
                                             it->second.status == "Retired");
    if (it != rows->end() && !again) continue;
    // A refusal stays until the user changes (another email): Apple would refuse it again.
    store::AppleUser r;
    r.client_user_id = id;
    r.user_id = id;
    r.email = email->second;
    r.status = "creating";
    r.updated = now;
    intents.push_back({it == rows->end() ? std::nullopt : std::optional(it->second), r});
    to_create.push_back(id);
  }
  if (reclaim) {
    for (const auto& [id, r] : *rows) {
      if (r.user_id.empty() || wanted_user_ids.count(r.user_id) || email_of.count(r.user_id) || !need_directory) {
        continue;
      }
      if (r.status == "retiring" && r.event_id.empty()) {
        resend(r, to_retire);  // written, never accepted (or refused): send again
      } else if (r.status == "Registered" || r.status == "Associated" ||
                 (r.status == "creating" && r.event_id.empty())) {
        store::AppleUser retiring = r;
        retiring.status = "retiring";
        retiring.updated = now;
        intents.push_back({r, retiring});
        to_retire.push_back(id);
      }
    }
  }

  // 3. Create and retire: the rows first, then Apple, then the events.
  std::string invitation_template;
  if (!to_create.empty() || !to_retire.empty()) {
    auto left_alone = ctx.store.UpdateAppleUsers(tenant, token_id, intents);
    if (!left_alone) return Fail(left_alone.error());
    for (store::AppleUserUpdate& u : intents) (*rows)[u.after.client_user_id] = std::move(u.after);
    if (!left_alone->empty()) {
      const std::set<std::string> moved(left_alone->begin(), left_alone->end());
      std::erase_if(to_create, [&](const std::string& id) { return moved.contains(id); });
      std::erase_if(to_retire, [&](const std::string& id) { return moved.contains(id); });
      auto now_rows = pass.Rows();
      if (!now_rows) return Fail(now_rows.error());
      *rows = std::move(*now_rows);
    }
    auto config = client.GetServiceConfig();  // cached by the client
    if (!config) return Fail(config.error().ToError());
    const int max_users = config->limits.max_users;
    invitation_template = config->urls.invitation_email;
    Timestamp first_poll = Micros(ctx.options.event_poll_interval);
    if (NotifiedOf(ctx, "USER_MANAGEMENT")) {
      first_poll = std::max(first_poll, Micros(ctx.options.event_notification_wait));
    }
    if (auto s = pass.Send(true, to_create, *rows, max_users, first_poll); !s) return Fail(s.error());
    if (auto s = pass.Send(false, to_retire, *rows, max_users, first_poll); !s) return Fail(s.error());
  }

  // 4. Refresh from GET /users: while users wait for their invitation to be
  // accepted and nothing tells vppd when (no USER_ASSOCIATED), or a Registered
  // user's invitation is not known yet (its create completed by a poll).
  {
    auto now_rows = pass.Rows();
    if (!now_rows) return Fail(now_rows.error());
    *rows = std::move(*now_rows);
  }
  bool refresh = false, url_missing = false;
  const bool associated_notified = NotifiedOf(ctx, "USER_ASSOCIATED");
  for (const auto& [id, r] : *rows) {
    if (r.status != "Registered" || r.user_id.empty()) continue;
    if (r.invite_code.empty() || !associated_notified) refresh = true;
    if (!r.invite_code.empty() && r.invite_url.empty()) url_missing = true;
  }
  if ((refresh || url_missing) && !ctx.stopping) {
    if (invitation_template.empty()) {
      auto config = client.GetServiceConfig();  // cached by the client
      if (!config) return Fail(config.error().ToError());
      invitation_template = config->urls.invitation_email;
    }
    if (refresh) {
      if (auto s = pass.Refresh(*rows, invitation_template); !s) return Fail(s.error());
    }
    // A code a USER_MANAGEMENT notification told: its URL (unless the person
    // accepted meanwhile: UpdateAppleUsers leaves that row alone).
    std::vector<store::AppleUserUpdate> with_url;
    for (auto& [id, r] : *rows) {
      if (r.status != "Registered" || r.invite_code.empty() || !r.invite_url.empty()) continue;
      store::AppleUser next = r;
      next.invite_url = InviteUrl(invitation_template, r.invite_code);
      next.updated = ctx.clock.Now();
      if (next.invite_url.empty()) continue;
      with_url.push_back({r, next});
    }
    auto left_alone = ctx.store.UpdateAppleUsers(tenant, token_id, with_url);
    if (!left_alone) return Fail(left_alone.error());
    if (left_alone->empty()) {
      for (store::AppleUserUpdate& u : with_url) (*rows)[u.after.client_user_id] = std::move(u.after);
    } else {
      auto now_rows = pass.Rows();
      if (!now_rows) return Fail(now_rows.error());
      *rows = std::move(*now_rows);
    }
  }

  // What the pass leaves.
  auto events = ctx.store.ListAppleEvents(tenant, token_id);
  if (!events) return Fail(events.error());
  pass.out.events_in_flight = std::any_of(events->begin(), events->end(), IsUserEvent);
  for (auto& [id, r] : *rows) {
    if (r.status == "Registered") ++pass.out.waiting;
    if (r.status == "failed") ++pass.out.failed;
    // A row still to be sent (Apple unreachable before it was) must come back too.
    if ((r.status == "creating" || r.status == "retiring") && r.event_id.empty()) pass.out.events_in_flight = true;
  }
  pass.out.by_client_user_id = std::move(*rows);
  if (pass.out.created > 0 || pass.out.retired > 0) {
    spdlog::info(
        "token {} (tenant {}): Apple users: {} sent to users/create, {} to users/retire; {} waiting for "
        "their invitation, {} refused",
        token_id, tenant, pass.out.created, pass.out.retired, pass.out.waiting, pass.out.failed);
  }
  return std::move(pass.out);
}

}  // namespace vppd::sync
