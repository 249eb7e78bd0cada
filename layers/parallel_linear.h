// layers/parallel_linear.h — Megatron's column- and row-parallel linear layers.
//
// ColumnParallelLinear: W is split by output rows over tp; x (N, in) is the same on
// every tp rank, y (N, out/tp) is this rank's columns. Forward needs no
// communication; backward's dx = dy W_local is a partial sum: all-reduced over
// tp ("copy to tp region": identity forward, all-reduce backward).
// RowParallelLinear: W is split by input columns; x (N, in/tp) is this rank's
// part, y (N, out) = all-reduce of the partial products ("reduce from tp
// region": all-reduce forward, identity backward). Its bias is replicated and
// added once, by tp rank 0, before the reduce. With one tp rank both are Linear.
#pragma once

#include "layers/linear.h"
#include "parallel/communicator.h"

namespace loom {

struct ColumnParallelLinear {
  Linear lin;
  Communicator* tp = nullptr;

  void forward(Backend& be, Tensor y, Tensor x) const { lin.forward(be, y, x); }
  void backward(Backend& be, Tensor dx, Tensor dy, Tensor x) const {
    lin.backward(be, dx, dy, x);
    if (!dx.empty()) tp->all_reduce(dx);  // sum the partial input gradients over tp
  }
};

struct RowParallelLinear {
  Linear lin;
  Communicator* tp = nullptr;

  void forward(Backend& be, Tensor y, Tensor x) const {
    be.matmul(y, x, lin.w, tp->rank() == 0 ? lin.b : Tensor{}, {.trans_b = Trans::yes});
    tp->all_reduce(y);  // sum the partial products over tp
  }
  // dy is the same on every tp rank, so the replicated bias gradient is too.
  void backward(Backend& be, Tensor dx, Tensor dy, Tensor x) const { lin.backward(be, dx, dy, x); }
};

}  // namespace loom
