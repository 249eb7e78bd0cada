// io/h5.cpp — HDF5 handles, error translation and attributes (see h5.h).
//
// Error messages come from walking HDF5's error stack upwards: its first entry
// is where HDF5 detected the problem ("truncated file: ...", "file signature
// not found"), which is what a user can act on.
#include "io/h5.h"

#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim
#endif

#include <fmt/format.h>

#include <mutex>
#include <regex>

#include "core/error.h"

namespace loom::h5 {

void quiet() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string last_error() {
  std::string out;
  auto walk = [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
    auto* s = static_cast<std::string*>(data);
    if (n == 0 && e->desc) *s = e->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &out);
  H5Eclear2(H5E_DEFAULT);
  return out;
}

hid_t check(hid_t id, const std::string& what, const std::string& hint) {
  if (id < 0) {
    const std::string detail = last_error();
    throw Error(detail.empty() ? what : what + ": " + detail, hint);
  }
  return id;
}

void check_status(herr_t status, const std::string& what, const std::string& hint) {
  if (status < 0) check(H5I_INVALID_HID, what, hint);
}

namespace {

// File access: file locking where the file system supports it, silently skipped
// where it does not (Lustre/NFS mounts without flock; HDF5's "best effort").
Handle file_access() {
  Handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate"), H5Pclose);
  check_status(H5Pset_file_locking(fapl, true, true), "H5Pset_file_locking");
  return fapl;
}

constexpr const char* kLockHint =
    "another process may be writing it, or the file system refuses file locks: "
    "try HDF5_USE_FILE_LOCKING=FALSE";

// HDF5 reports a file shorter than its superblock says as
// "truncated file: eof = N, sblock->base_addr = B, stored_eof = M".
void throw_if_truncated(const std::string& path, const std::string& detail) {
  std::smatch m;
  if (!std::regex_search(detail, m, std::regex(R"(truncated file: eof = (\d+).*stored_eof = (\d+))"))) return;
  throw Error(fmt::format("'{}' is truncated ({} bytes, HDF5 expected {}): the file was not completely written; "
                          "re-create it",
                          path, m[1].str(), m[2].str()),
              "loom's writers rename only complete files into place: an interrupted copy or a full disk cut this one");
}

}  // namespace

Handle open_file(const std::string& path, const std::string& hint) {
  quiet();
  Handle fapl = file_access();
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  if (id < 0) {
    const std::string detail = last_error();
    throw_if_truncated(path, detail);
    // "lock" as a word: HDF5's truncation message mentions "sblock" (the superblock).
    const bool lock = std::regex_search(detail, std::regex(R"(\block)"));
    if (lock) throw Error(fmt::format("cannot open '{}' ({})", path, detail), kLockHint);
    throw Error(fmt::format("'{}' is not a readable HDF5 file ({})", path,
                            detail.empty() ? "HDF5 could not open it" : detail),
                hint);
  }
  return Handle(id, H5Fclose);
}

Handle create_file(const std::string& path) {
  quiet();
  Handle fcpl(check(H5Pcreate(H5P_FILE_CREATE), "H5Pcreate"), H5Pclose);
  check_status(H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED),
               "H5Pset_link_creation_order");
  Handle fapl = file_access();
  return Handle(check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, fapl),
                      fmt::format("cannot create HDF5 file '{}'", path),
                      "check that the directory exists, is writable and has free space"),
                H5Fclose);
}

Handle open_group(hid_t loc, const std::string& name, const std::string& what) {
  return Handle(check(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), what), H5Gclose);
}

Handle open_dataset(hid_t loc, const std::string& name, const std::string& what, hid_t dapl) {
  return Handle(check(H5Dopen2(loc, name.c_str(), dapl), what), H5Dclose);
}

Handle create_group(hid_t loc, const std::string& name) {
  return Handle(check(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                      fmt::format("cannot create group '{}'", name)),
                H5Gclose);
}

namespace {
herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->emplace_back(name);
  return 0;
}
}  // namespace

std::vector<std::string> children(hid_t loc) {
  std::vector<std::string> names;
  if (H5Literate(loc, H5_INDEX_CRT_ORDER, H5_ITER_INC, nullptr, collect_name, &names) < 0) {
    H5Eclear2(H5E_DEFAULT);  // creation order not tracked: name order
    names.clear();
    check_status(H5Literate(loc, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name, &names), "H5Literate");
  }
  return names;
}

std::mutex& library_lock() {
  static std::mutex m;
  return m;
}

void release_free_memory() {
  {
    const std::lock_guard lock(library_lock());
    H5garbage_collect();
  }
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

bool has_link(hid_t loc, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return false;
  const htri_t r = H5Lexists(loc, name.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

std::vector<std::int64_t> shape_of(hid_t dataset) {
  Handle space(check(H5Dget_space(dataset), "H5Dget_space"), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  check(rank, "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0) check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "H5Sget_simple_extent_dims");
  return std::vector<std::int64_t>(dims.begin(), dims.end());
}

namespace {

std::string describe_type(hid_t type) {
  const std::size_t bits = 8 * H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return fmt::format("{}int{}", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    case H5T_FLOAT: return fmt::format("float{}", bits);
    case H5T_STRING: return "string";
    default: return "a non-numeric type";
  }
}

Handle open_attr(hid_t obj, const std::string& name) {
  return Handle(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), fmt::format("cannot open attribute '{}'", name)),
                H5Aclose);
}

void check_single_value(hid_t attr, const std::string& name, const std::string& where) {
  Handle space(check(H5Aget_space(attr), "H5Aget_space"), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  LOOM_CHECK(n == 1, "", "{}: attribute '{}' holds {} values, expected one", where, name, n);
}

}  // namespace

std::string type_name(hid_t dataset) {
  Handle type(check(H5Dget_type(dataset), "H5Dget_type"), H5Tclose);
  return describe_type(type);
}

bool has_attr(hid_t obj, const std::string& name) {
  const htri_t r = H5Aexists(obj, name.c_str());
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

void write_attr(hid_t obj, const std::string& name, std::string_view value) {
  if (has_attr(obj, name)) check_status(H5Adelete(obj, name.c_str()), "H5Adelete");
  Handle type(check(H5Tcopy(H5T_C_S1), "H5Tcopy"), H5Tclose);
  check_status(H5Tset_size(type, H5T_VARIABLE), "H5Tset_size");
  check_status(H5Tset_cset(type, H5T_CSET_UTF8), "H5Tset_cset");
  Handle space(check(H5Screate(H5S_SCALAR), "H5Screate"), H5Sclose);
  Handle attr(check(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                    fmt::format("cannot create attribute '{}'", name)),
              H5Aclose);
  const std::string copy(value);
  const char* p = copy.c_str();
  check_status(H5Awrite(attr, type, &p), fmt::format("cannot write attribute '{}'", name));
}

void write_attr(hid_t obj, const std::string& name, std::int64_t value) {
  if (has_attr(obj, name)) check_status(H5Adelete(obj, name.c_str()), "H5Adelete");
  Handle space(check(H5Screate(H5S_SCALAR), "H5Screate"), H5Sclose);
  Handle attr(check(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT),
                    fmt::format("cannot create attribute '{}'", name)),
              H5Aclose);
  check_status(H5Awrite(attr, H5T_NATIVE_INT64, &value), fmt::format("cannot write attribute '{}'", name));
}

std::optional<std::string> read_string_attr(hid_t obj, const std::string& name, const std::string& where) {
  if (!has_attr(obj, name)) return std::nullopt;
  Handle attr = open_attr(obj, name);
  Handle ftype(check(H5Aget_type(attr), "H5Aget_type"), H5Tclose);
  LOOM_CHECK(H5Tget_class(ftype) == H5T_STRING, "", "{}: attribute '{}' is {}, expected a string", where, name,
             describe_type(ftype));
  check_single_value(attr, name, where);
  Handle mtype(check(H5Tcopy(H5T_C_S1), "H5Tcopy"), H5Tclose);
  check_status(H5Tset_cset(mtype, H5Tget_cset(ftype)), "H5Tset_cset");
  if (H5Tis_variable_str(ftype) > 0) {
    check_status(H5Tset_size(mtype, H5T_VARIABLE), "H5Tset_size");
    char* p = nullptr;
    check_status(H5Aread(attr, mtype, &p), fmt::format("{}: cannot read attribute '{}'", where, name));
    std::string out = p ? std::string(p) : std::string();
    if (p) H5free_memory(p);
    return out;
  }
  const std::size_t size = H5Tget_size(ftype);
  check_status(H5Tset_size(mtype, size), "H5Tset_size");
  check_status(H5Tset_strpad(mtype, H5T_STR_NULLPAD), "H5Tset_strpad");
  std::string out(size, '\0');
  check_status(H5Aread(attr, mtype, out.data()), fmt::format("{}: cannot read attribute '{}'", where, name));
  out.resize(out.find('\0') == std::string::npos ? size : out.find('\0'));
  return out;
}

std::optional<std::int64_t> read_int_attr(hid_t obj, const std::string& name, const std::string& where) {
  if (!has_attr(obj, name)) return std::nullopt;
  Handle attr = open_attr(obj, name);
  Handle ftype(check(H5Aget_type(attr), "H5Aget_type"), H5Tclose);
  LOOM_CHECK(H5Tget_class(ftype) == H5T_INTEGER, "", "{}: attribute '{}' is {}, expected an integer", where,
             name, describe_type(ftype));
  check_single_value(attr, name, where);
  std::int64_t v = 0;
  check_status(H5Aread(attr, H5T_NATIVE_INT64, &v), fmt::format("{}: cannot read attribute '{}'", where, name));
  return v;
}

}  // namespace loom::h5
