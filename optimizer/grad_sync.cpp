// optimizer/grad_sync.cpp — see grad_sync.h.
#include "optimizer/grad_sync.h"

#include <algorithm>

namespace loom {

BucketReadiness::BucketReadiness(std::vector<bool> deferred, std::function<void(std::size_t)> start)
    : deferred_(std::move(deferred)), started_(deferred_.size(), false), done_(deferred_.size(), 0),
      start_(std::move(start)) {}

void BucketReadiness::begin_step(int microbatches) {
  microbatches_ = microbatches;
  std::fill(done_.begin(), done_.end(), 0);
  std::fill(started_.begin(), started_.end(), false);
}

void BucketReadiness::bucket_done(std::size_t b) {
  LOOM_CHECK(b < done_.size(), "", "gradient bucket {} of {}", b, done_.size());
  if (++done_[b] < microbatches_ || deferred_[b]) return;
  LOOM_CHECK(!started_[b], "", "gradient bucket {} reported complete more than {} times", b, microbatches_);
  started_[b] = true;
  start_(b);  // the last micro-batch is in: reduce while backward goes on
}

void BucketReadiness::start_rest() {
  for (std::size_t b = 0; b < started_.size(); ++b)
    if (!started_[b]) started_[b] = true, start_(b);
}

DataParallelGrads::DataParallelGrads(Backend& be, Communicator& dp, std::vector<Tensor> buckets, DType reduce_dtype)
    : be_(be),
      dp_(dp),
      buckets_(std::move(buckets)),
      mem_(be),
      ready_(std::vector<bool>(buckets_.size(), false), [this](std::size_t b) { start(b); }) {
  if (reduce_dtype == DType::f32 || dp_.size() == 1) return;
  const std::string category = fmt::format("gradient reduction staging ({})", dtype_name(reduce_dtype));
  for (const Tensor& b : buckets_) staging_.push_back(mem_.alloc(category, b.shape, reduce_dtype));
}

void DataParallelGrads::start(std::size_t b) {
  if (dp_.size() == 1 || buckets_[b].empty()) return;
  if (staging_.empty()) return dp_.all_reduce_start(buckets_[b]);
  be_.cast(staging_[b], buckets_[b]);
  be_.synchronize();  // the rounded copy is complete before the communicator reads it
  dp_.all_reduce_start(staging_[b]);
}

void DataParallelGrads::finish() {
  ready_.start_rest();
  if (dp_.size() == 1) return;
  dp_.wait_all();
  for (std::size_t b = 0; b < staging_.size(); ++b)
    if (!buckets_[b].empty()) be_.cast(buckets_[b], staging_[b]);
}

TiedGrads::TiedGrads(Backend& be, Communicator& pp, std::vector<Group> groups)
    : be_(be), pp_(pp), groups_(std::move(groups)), mem_(be) {
  for (const Group& g : groups_) {
    LOOM_CHECK(std::is_sorted(g.holders.begin(), g.holders.end()) &&
                   std::count(g.holders.begin(), g.holders.end(), pp.rank()) == 1,
               "", "tied group: holders must be ascending and include this stage {}", pp.rank());
    std::vector<Tensor> bufs;
    for (int h : g.holders)
      bufs.push_back(h == pp.rank() ? Tensor{} : mem_.alloc("tied gradients from other stages", g.grad.shape));
    peer_.push_back(bufs);
  }
}

void TiedGrads::sum() {
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const Group& g = groups_[k];
    if (g.holders.size() < 2) continue;
    std::vector<P2P> ops;
    for (std::size_t j = 0; j < g.holders.size(); ++j) {
      if (g.holders[j] == pp_.rank()) continue;
      ops.push_back({P2P::Kind::send, g.grad, g.holders[j]});
      ops.push_back({P2P::Kind::recv, peer_[k][j], g.holders[j]});
    }
    pp_.exchange(ops);
    // Sum in holder order on every holder: the same additions, so the copies stay identical.
    const std::size_t self = std::size_t(std::find(g.holders.begin(), g.holders.end(), pp_.rank()) - g.holders.begin());
    Tensor acc = self == 0 ? g.grad : peer_[k][0];
    for (std::size_t j = 1; j < g.holders.size(); ++j) be_.axpy(acc, 1.0f, j == self ? g.grad : peer_[k][j]);
    if (self != 0) be_.copy(g.grad, acc);
  }
}

}  // namespace loom
