// Internal to store/: a connection borrowed from a pool (SQLite's readers,
// PostgreSQL's connections), handed back to the pool when the lease goes away.
//
//   class Pool {
//    public:
//     using Lease = PoolLease<Pool, Connection>;
//     Result<Lease> Acquire();
//    private:
//     friend Lease;
//     void Release(std::unique_ptr<Connection> conn);  // takes the connection back
//   };
//
// A lease is moved, never copied or assigned; the moved-from one hands back
// nothing. Used by one thread at a time; the pool's Release does its own locking.
#pragma once

#include <memory>
#include <utility>

namespace vppd::store {

template <class Pool, class Connection>
class PoolLease {
 public:
  PoolLease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
  PoolLease(PoolLease&& other) noexcept = default;
  PoolLease& operator=(PoolLease&&) = delete;
  ~PoolLease() {
    if (conn_) pool_->Release(std::move(conn_));
  }
  Connection& conn() { return *conn_; }

 private:
  Pool* pool_;
  std::unique_ptr<Connection> conn_;
};

}  // namespace vppd::store
