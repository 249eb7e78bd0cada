// core/buffer.h — Buffer: owning memory from an Allocator (a backend), freed on destruction.
//
// The training step never allocates: every Buffer is created before step 1
// from the memory plan. Buffers are move-only. The Allocator interface lives
// here (not in backend/) so core/ does not depend on backend/; every Backend
// is an Allocator. Allocators count live and peak bytes so the memory plan can
// be compared with what was really allocated.
//
// A Buffer may also be host *staging* memory (Memory::staging) for the data a step
// copies to the device: page-locked on CUDA, so Backend::upload_async can enqueue the
// copy without waiting; ordinary aligned host memory on the CPU. Its tensor says
// Device::cpu, and it is not counted in live/peak bytes (those are the device's).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <utility>

#include "core/error.h"
#include "core/tensor.h"

namespace loom {

enum class Memory : bool { device = false, staging = true };

class Allocator {
public:
  virtual ~Allocator() = default;
  virtual Device device() const = 0;
  virtual void* allocate(std::size_t bytes) = 0;   // 64-byte aligned; throws on failure
  virtual void deallocate(void* p, std::size_t bytes) = 0;
  // Host staging memory (Memory::staging), 64-byte aligned; throws on failure. The
  // default is ordinary host memory; the CUDA backend page-locks it (cudaHostAlloc).
  virtual void* allocate_staging(std::size_t bytes) {
    void* p = bytes ? std::aligned_alloc(64, (bytes + 63) / 64 * 64) : nullptr;
    LOOM_CHECK(p != nullptr || bytes == 0, "reduce train.global_batch or model.seq_len",
               "allocating {} bytes of host staging memory failed", bytes);
    return p;
  }
  virtual void deallocate_staging(void* p, std::size_t /*bytes*/) noexcept { std::free(p); }
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
  Buffer(Allocator& a, Shape shape, DType dtype, Memory memory = Memory::device)
      : alloc_(&a), shape_(shape), dtype_(dtype), memory_(memory) {
    bytes_ = std::size_t(shape.numel()) * dtype_size(dtype);
    if (bytes_) ptr_ = memory == Memory::staging ? a.allocate_staging(bytes_) : a.allocate(bytes_);
  }
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) { reset(); swap(o); }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  Tensor tensor() const {
    return Tensor{ptr_, shape_, dtype_, alloc_ && memory_ == Memory::device ? alloc_->device() : Device::cpu};
  }
  operator Tensor() const { return tensor(); }
  std::size_t bytes() const { return bytes_; }

  template <class T>
  T* data() const { return tensor().data<T>(); }

  void reset() {
    if (ptr_ && memory_ == Memory::staging)
      alloc_->deallocate_staging(ptr_, bytes_);
    else if (ptr_)
      alloc_->deallocate(ptr_, bytes_);
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
    std::swap(memory_, o.memory_);
  }
  Allocator* alloc_ = nullptr;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Shape shape_;
  DType dtype_ = DType::f32;
  Memory memory_ = Memory::device;
};

}  // namespace loom
