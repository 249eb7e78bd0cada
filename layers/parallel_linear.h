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
// Sequence parallel (sp set, layers/sequence_parallel.h): the column-parallel x and dx
// and the row-parallel y and dy are this rank's N/tp rows; the column-parallel layer
// all-gathers x (forward, and again in backward) and reduce-scatters dx, the
// row-parallel one reduce-scatters y and all-gathers dy.
#pragma once

#include "layers/linear.h"
#include "layers/sequence_parallel.h"
#include "parallel/communicator.h"

namespace loom {

struct ColumnParallelLinear {
  Linear lin;
  Communicator* tp = nullptr;
  const SequenceParallel* sp = nullptr;

  void forward(Backend& be, Tensor y, Tensor x) const {
    if (!sp) return lin.forward(be, y, x);
    tp->all_gather(sp->gathered, x);  // (N/tp, in) -> (N, in)
    lin.forward(be, y, sp->gathered);
  }
  // y = h, and g = gelu(h) fused into the GEMM (the MLP's fc; linear.h).
  void forward_gelu(Backend& be, Tensor h, Tensor g, Tensor x) const {
    if (!sp) return lin.forward_gelu(be, h, g, x);
    tp->all_gather(sp->gathered, x);  // (N/tp, in) -> (N, in)
    lin.forward_gelu(be, h, g, sp->gathered);
  }
  void backward(Backend& be, Tensor dx, Tensor dy, Tensor x) const {
    if (!sp) {
      lin.backward(be, dx, dy, x);
      if (!dx.empty()) tp->all_reduce(dx);  // sum the partial input gradients over tp
      return;
    }
    tp->all_gather(sp->gathered, x);           // the input again, for dW
    lin.backward(be, sp->full, dy, sp->gathered);  // (N, in) partial input gradient
    tp->reduce_scatter(dx, sp->full);          // summed over tp; this rank's rows
  }
};

struct RowParallelLinear {
  Linear lin;
  Communicator* tp = nullptr;
  const SequenceParallel* sp = nullptr;

  void forward(Backend& be, Tensor y, Tensor x) const {
    const Tensor partial = sp ? sp->full : y;
    be.matmul(partial, x, lin.w, tp->rank() == 0 ? lin.b : Tensor{}, {.trans_b = Trans::yes});
    if (sp)
      tp->reduce_scatter(y, partial);  // summed over tp; this rank's rows
    else
      tp->all_reduce(y);  // sum the partial products over tp
  }
  // dy is the same on every tp rank (with sp: once gathered), so the replicated bias gradient is too.
  // gelu_h (optional): x was gelu(gelu_h); dx becomes the gradient of gelu_h (linear.h).
  void backward(Backend& be, Tensor dx, Tensor dy, Tensor x, Tensor gelu_h = {}) const {
    if (!sp) return lin.backward(be, dx, dy, x, gelu_h);
    tp->all_gather(sp->full, dy);  // (N/tp, out) -> (N, out)
    lin.backward(be, dx, sp->full, x, gelu_h);
  }
};

}  // namespace loom
