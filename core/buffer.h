// core/buffer.h — Buffer: owning memory from an Allocator (a backend), freed on destruction.
//
// The training step never allocates: every Buffer is created before step 1
// from the memory plan. Buffers are move-only. The Allocator interface lives
// here (not in backend/) so core/ does not depend on backend/; every Backend
// is an Allocator. Allocators count live and peak bytes so the memory plan can
// be compared with what was really allocated.
#pragma once

#include <cstddef>
#include <utility>

#include "core/tensor.h"

namespace loom {

class Allocator {
public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  virtual void* allocate(std::size_t bytes) = 0;   // 64-byte aligned; throws on failure
  virtual void deallocate(void* p, std::size_t bytes) = 0;
  std::size_t live_bytes() const { return live_; }
  std::size_t peak_bytes() const { return peak_; }

protected:
  void count_alloc(std::size_t n) { live_ += n; peak_ = live_ > peak_ ? live_ : peak_; }
  void count_free(std::size_t n) { live_ -= n; }

private:
  std::size_t live_ = 0, peak_ = 0;
};

class Buffer {
public:
  Buffer() = default;
  Buffer(Allocator& a, Shape shape, DType dtype) : alloc_(&a), shape_(shape), dtype_(dtype) {
    bytes_ = std::size_t(shape.numel()) * dtype_size(dtype);
    ptr_ = bytes_ ? a.allocate(bytes_) : nullptr;
  }
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) { reset(); swap(o); }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  Tensor tensor() const { return Tensor{ptr_, shape_, dtype_, alloc_ ? alloc_->device() : Device::cpu}; }
  operator Tensor() const { return tensor(); }
  std::size_t bytes() const { return bytes_; }

  template <class T>
  T* data() const { return tensor().data<T>(); }

  void reset() {
    if (ptr_) alloc_->deallocate(ptr_, bytes_);
    ptr_ = nullptr;
    bytes_ = 0;
  }

private:
  void swap(Buffer& o) {
    std::swap(alloc_, o.alloc_);
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    std::swap(shape_, o.shape_);
    std::swap(dtype_, o.dtype_);
  }
  Allocator* alloc_ = nullptr;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Shape shape_;
  DType dtype_ = DType::f32;
};

}  // namespace loom
