// io/h5.h — the thin HDF5 layer io/ is written against: owning handles, errors
// that name the file, scalar attributes, dataset shapes.
//
// Handle owns one hid_t and closes it (move-only). Every failing HDF5 call is
// turned into a loom::Error carrying the innermost message of HDF5's error stack;
// h5::quiet() (called by open_file/create_file) stops HDF5 printing that stack
// itself. Attributes are written the way h5py writes Python values: strings as
// scalar variable-length UTF-8, integers as scalar int64. Readers accept fixed-
// or variable-length strings and any integer type. Not thread-safe (nor is HDF5; see
// library_lock()).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace loom::h5 {

class Handle {
public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: handles are passed straight to H5 calls
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = H5I_INVALID_HID;
  }

private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

// Switch off HDF5's automatic error-stack printing (idempotent, process-wide).
void quiet();
// The innermost description on HDF5's current error stack, e.g. "truncated file:
// eof = 2048, ...", or "" when the stack is empty.
std::string last_error();

// Throw loom::Error("<what>: <last_error()>", hint) when id / status is negative.
hid_t check(hid_t id, const std::string& what, const std::string& hint = {});
void check_status(herr_t status, const std::string& what, const std::string& hint = {});

// Files. open_file: read-only; the caller has checked that the path exists.
// Errors name the path and say "not a readable HDF5 file (<detail>)".
Handle open_file(const std::string& path, const std::string& hint);
Handle create_file(const std::string& path);  // truncates; tracks link creation order
Handle open_group(hid_t loc, const std::string& name, const std::string& what);
Handle open_dataset(hid_t loc, const std::string& name, const std::string& what, hid_t dapl = H5P_DEFAULT);
Handle create_group(hid_t loc, const std::string& name);

// The names of the links in group `loc`: creation order when the group tracks it, else
// name order.
std::vector<std::string> children(hid_t loc);

// HDF5 keeps one library state per process and is not thread-safe. Code that calls it from
// a second thread (the checkpoint shard writer) holds this lock, and so do the calls the
// main thread may make meanwhile (TokenDataset's on-disk reads). A function-local static:
// what it guards is itself process-wide.
std::mutex& library_lock();

// Hands back to the operating system what a finished write left behind: HDF5's internal
// free lists (H5garbage_collect; takes library_lock()) and then every malloc arena's free
// pages (glibc malloc_trim, all threads' arenas). Without it a checkpoint's transient
// metadata, the writer thread's arena and the index's buffers stay resident for the rest
// of the run, and the next allocation peak (the final weights file) stacks on them.
// Live allocations are untouched; costs about a millisecond.
void release_free_memory();

// True when `loc` has a direct link called `name` (no '/' walking).
bool has_link(hid_t loc, const std::string& name);
// The dataset's extents (empty for a scalar dataspace).
std::vector<std::int64_t> shape_of(hid_t dataset);
// Its type: "uint16", "float32", "int64", "string", ... (for messages and checks).
std::string type_name(hid_t dataset);

// Attributes on a file, group or dataset.
bool has_attr(hid_t obj, const std::string& name);
void write_attr(hid_t obj, const std::string& name, std::string_view value);
void write_attr(hid_t obj, const std::string& name, std::int64_t value);
// std::nullopt when absent; loom::Error (naming `where`) when of the wrong kind.
std::optional<std::string> read_string_attr(hid_t obj, const std::string& name, const std::string& where);
std::optional<std::int64_t> read_int_attr(hid_t obj, const std::string& name, const std::string& where);

}  // namespace loom::h5
