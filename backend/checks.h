// backend/checks.h — argument checks shared by every backend, so that CPU and CUDA
// reject the same bad input with the same message ("<op>: <what> ...").
#pragma once

#include <string_view>

#include "core/error.h"
#include "core/tensor.h"

namespace loom::check {

inline void same_shape(std::string_view op, std::string_view na, const Tensor& a, std::string_view nb,
                       const Tensor& b) {
  LOOM_CHECK(a.shape == b.shape, "", "{}: {} is {} but {} is {}; they must have the same shape", op, na,
             a.str(), nb, b.str());
}

inline void numel(std::string_view op, std::string_view name, const Tensor& t, std::int64_t n) {
  LOOM_CHECK(t.numel() == n, "", "{}: {} is {} but must hold {} elements", op, name, t.str(), n);
}

inline void dtype(std::string_view op, std::string_view name, const Tensor& t, DType want) {
  LOOM_CHECK(t.dtype == want, "", "{}: {} is {} but must be {}", op, name, t.str(), dtype_name(want));
}

inline void device(std::string_view op, std::string_view name, const Tensor& t, Device want) {
  LOOM_CHECK(t.empty() || t.device == want, "move the tensor to the backend's device first",
             "{}: {} lives on {} but this is the {} backend", op, name, device_name(t.device),
             device_name(want));
}

inline void not_empty(std::string_view op, std::string_view name, const Tensor& t) {
  LOOM_CHECK(!t.empty() || t.numel() == 0, "", "{}: {} {} has no memory", op, name, t.str());
}

}  // namespace loom::check
