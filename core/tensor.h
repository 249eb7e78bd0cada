// core/tensor.h — Tensor: a non-owning, contiguous view (pointer, shape, dtype, device).
//
// Tensors never own memory: a Buffer (core/buffer.h) or the caller does.
// Copying a Tensor copies the view. Ops take Tensors by value and check their
// shapes and dtypes; `data<T>()` checks the dtype before handing out a typed
// pointer, so a kernel cannot read bf16 bits as floats by mistake.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/shape.h"

namespace loom {

enum class Device : std::uint8_t { cpu, cuda };

inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

struct Tensor {
  void* ptr = nullptr;
  Shape shape;
  DType dtype = DType::f32;
  Device device = Device::cpu;

  bool empty() const { return ptr == nullptr; }
  std::int64_t numel() const { return shape.numel(); }
  std::size_t bytes() const { return std::size_t(numel()) * dtype_size(dtype); }

  template <class T>
  T* data() const {
    LOOM_CHECK(dtype_v<T> == dtype, "", "tensor {} is {}, read as {}", str(), dtype_name(dtype),
               dtype_name(dtype_v<T>));
    return static_cast<T*>(ptr);
  }

  // Same memory, new shape with the same number of elements.
  Tensor view(Shape s) const {
    LOOM_CHECK(s.numel() == numel(), "", "view: cannot view {} as {}", shape.str(), s.str());
    return Tensor{ptr, s, dtype, device};
  }
  // Rows [begin, end) along dimension 0, as a contiguous sub-view.
  Tensor slice_rows(std::int64_t begin, std::int64_t end) const;

  std::string str() const { return shape.str() + " " + std::string(dtype_name(dtype)); }
};

inline Tensor Tensor::slice_rows(std::int64_t begin, std::int64_t end) const {
  LOOM_CHECK(shape.rank() >= 1 && 0 <= begin && begin <= end && end <= shape[0], "",
             "slice_rows: [{}, {}) out of range for {}", begin, end, shape.str());
  const std::int64_t row = shape[0] == 0 ? 0 : numel() / shape[0];
  Shape s = shape;
  Shape out;
  switch (shape.rank()) {
    case 1: out = Shape{end - begin}; break;
    case 2: out = Shape{end - begin, s[1]}; break;
    case 3: out = Shape{end - begin, s[1], s[2]}; break;
    default: out = Shape{end - begin, s[1], s[2], s[3]}; break;
  }
  return Tensor{static_cast<char*>(ptr) + begin * row * std::int64_t(dtype_size(dtype)), out, dtype,
                device};
}

// Token ids (B, T) or (N,): int32, kept apart from DType because no op does
// arithmetic on them; only embedding and cross-entropy read them.
struct TokenView {
  const std::int32_t* ptr = nullptr;
  Shape shape;
  Device device = Device::cpu;
  std::int64_t numel() const { return shape.numel(); }
};

// Host-side view of existing memory, for tests and I/O.
template <class T>
Tensor host_tensor(T* p, Shape s) {
  return Tensor{static_cast<void*>(p), s, dtype_v<T>, Device::cpu};
}

}  // namespace loom
