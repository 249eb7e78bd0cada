// tests/unit/test_staging_buffer.cpp — host staging Buffers (Memory::staging) and
// Backend::upload_async on the CPU backend (core/buffer.h, backend/backend.h).
//
// On the CPU a staging Buffer is plain aligned host memory that the device counters do not
// see, and upload_async is copy: the trainer's token ids reach the model with the same
// bits as before. (The CUDA side, page-locked memory and cudaMemcpyAsync, is tested in
// tests/gpu/test_cuda_flash_attention.cpp.)
#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "backend/registry.h"
#include "core/buffer.h"

namespace loom {
namespace {

TEST(StagingBuffer, IsHostMemoryOutsideTheDeviceCounters) {
  auto be = make_backend(Device::cpu);
  const std::size_t live = be->live_bytes(), peak = be->peak_bytes();
  Buffer s(*be, Shape{3, 5}, DType::f32, Memory::staging);
  EXPECT_EQ(s.tensor().device, Device::cpu);
  EXPECT_EQ(s.bytes(), 60u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.tensor().ptr) % 64, 0u);
  EXPECT_EQ(be->live_bytes(), live);
  EXPECT_EQ(be->peak_bytes(), peak);
  Buffer moved = std::move(s);  // the placement moves with the memory
  EXPECT_EQ(moved.tensor().device, Device::cpu);
  EXPECT_EQ(s.bytes(), 0u);
  Buffer d(*be, Shape{15}, DType::f32);
  EXPECT_EQ(be->live_bytes(), live + 60);
  Buffer empty(*be, Shape{0}, DType::f32, Memory::staging);
  EXPECT_TRUE(empty.tensor().empty());
}

TEST(StagingBuffer, UploadAsyncIsCopyOnTheCpu) {
  auto be = make_backend(Device::cpu);
  Buffer s(*be, Shape{7}, DType::f32, Memory::staging), d(*be, Shape{7}, DType::f32);
  const std::vector<std::int32_t> ids = {5, -1, 0, 50256, 7, 3, 2};
  std::copy(ids.begin(), ids.end(), static_cast<std::int32_t*>(s.tensor().ptr));
  be->upload_async(d, s);
  be->synchronize();
  const auto* got = static_cast<const std::int32_t*>(d.tensor().ptr);
  EXPECT_EQ(std::vector<std::int32_t>(got, got + 7), ids);
}

}  // namespace
}  // namespace loom
