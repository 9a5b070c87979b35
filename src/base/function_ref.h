// FunctionRef<R(Args...)>: a non-owning reference to something callable, for a
// parameter that is called during the call and never kept (a transaction's
// body, a visitor). Two pointers, no allocation, one indirect call: unlike
// std::function, which may allocate for a lambda of more than two pointers'
// captures and copies it.
//
// It refers to the callable it was made from, so it must not outlive it: take
// it as a parameter, never keep it in a member or return it.
//
//   Status Run(FunctionRef<Status(Tx&)> body) { Tx tx; return body(tx); }
//   Run([&](Tx& tx) -> Status { ... });
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace vppd {

template <class Signature>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> && std::is_invocable_r_v<R, F&, Args...>)
      FunctionRef(F&& f)
  noexcept  // NOLINT: implicit, as std::function's
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* object, Args... args) -> R {
          return std::invoke(*static_cast<std::remove_reference_t<F>*>(object), std::forward<Args>(args)...);
        }) {}

  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

}  // namespace vppd
