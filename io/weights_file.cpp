// io/weights_file.cpp — writing and reading the weights file (see weights_file.h).
//
// Parameters are contiguous float32 datasets (little-endian) at the root. The
// reader lists the root's datasets once at open (their names and shapes) and
// keeps the file open; read() is one H5Dread with HDF5 converting to float32.
#include "io/weights_file.h"

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/h5.h"

namespace loom {

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

}  // namespace

void write_weights(const std::string& path, const std::vector<NamedArray>& arrays, const std::string& config_json,
                   Overwrite overwrite, const std::map<std::string, std::string>& attrs) {
  LOOM_CHECK(nlohmann::json::accept(config_json), "", "write_weights: config is not valid JSON");
  std::set<std::string> seen;
  for (const NamedArray& a : arrays) {
    LOOM_CHECK(!a.name.empty() && a.name != "." && a.name.find('/') == std::string::npos, "",
               "write_weights: invalid parameter name '{}' (non-empty, no '/')", a.name);
    LOOM_CHECK(seen.insert(a.name).second, "", "write_weights: parameter '{}' appears twice", a.name);
    for (auto d : a.shape) LOOM_CHECK(d >= 0, "", "write_weights: '{}' has a negative extent", a.name);
    LOOM_CHECK(a.data != nullptr || numel(a.shape) == 0, "", "write_weights: '{}' has no data", a.name);
  }

  for (const auto& [name, value] : attrs)
    LOOM_CHECK(name != "magic" && name != "format_version" && name != "config" && name != "architecture" &&
                   name != "created_by",
               "", "write_weights: attribute '{}' is the file's own", name);

  AtomicWrite out(path, overwrite, "write_weights");
  {
    h5::Handle file = h5::create_file(out.tmp_path());
    h5::write_attr(file, "magic", kWeightsMagic);
    h5::write_attr(file, "format_version", kWeightsFormatVersion);
    h5::write_attr(file, "config", config_json);
    const auto config = nlohmann::json::parse(config_json);
    if (config.is_object() && config.contains("architecture") && config["architecture"].is_string())
      h5::write_attr(file, "architecture", config["architecture"].get<std::string>());
    h5::write_attr(file, "created_by", "loom");
    for (const auto& [name, value] : attrs) h5::write_attr(file, name, value);
    for (const NamedArray& a : arrays) {
      const std::vector<hsize_t> dims(a.shape.begin(), a.shape.end());
      h5::Handle space(h5::check(a.shape.empty() ? H5Screate(H5S_SCALAR)
                                                 : H5Screate_simple(int(dims.size()), dims.data(), nullptr),
                                 "H5Screate"),
                       H5Sclose);
      h5::Handle dset(h5::check(H5Dcreate2(file, a.name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT,
                                           H5P_DEFAULT),
                                fmt::format("write_weights: cannot create dataset '{}'", a.name)),
                      H5Dclose);
      if (numel(a.shape) > 0) {
        h5::check_status(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.data),
                         fmt::format("write_weights: cannot write '{}' to '{}'", a.name, out.tmp_path()),
                         "check the free disk space");
      }
    }
    h5::check_status(H5Fflush(file, H5F_SCOPE_GLOBAL), fmt::format("cannot flush '{}'", out.tmp_path()));
  }
  out.commit();
}

// ---- reader ----------------------------------------------------------------------

struct WeightsReader::Impl {
  std::string path, config, architecture;
  h5::Handle file;
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::int64_t>> shapes;

  const std::vector<std::int64_t>& shape_of(const std::string& name) const {
    const auto it = shapes.find(name);
    if (it == shapes.end()) {
      std::string some;
      for (std::size_t i = 0; i < order.size() && i < 6; ++i) some += (i ? ", " : "") + order[i];
      if (order.size() > 6) some += ", ...";
      throw Error(fmt::format("weights file '{}' has no parameter '{}'", path, name),
                  order.empty() ? std::string("the file holds no parameters")
                                : fmt::format("it holds {} parameters: {}; were the weights written for another "
                                              "model configuration?",
                                              order.size(), some));
    }
    return it->second;
  }
};

namespace {

struct Listing {
  std::vector<std::string> names;
};

herr_t collect_dataset(hid_t group, const char* name, const H5L_info_t* /*info*/, void* data) {
  const hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj < 0) return -1;
  if (H5Iget_type(obj) == H5I_DATASET) static_cast<Listing*>(data)->names.emplace_back(name);
  H5Oclose(obj);
  return 0;
}

}  // namespace

WeightsReader::WeightsReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WeightsReader::WeightsReader(WeightsReader&&) noexcept = default;
WeightsReader& WeightsReader::operator=(WeightsReader&&) noexcept = default;
WeightsReader::~WeightsReader() = default;

WeightsReader WeightsReader::open(const std::string& path) {
  auto d = std::make_unique<Impl>();
  d->path = path;
  std::error_code ec;
  LOOM_CHECK(std::filesystem::is_regular_file(path, ec), "check the path (weights come from loom-train or loom-ckpt)",
             "weights file '{}' {}", path,
             std::filesystem::exists(path, ec) ? "is not a regular file" : "does not exist");
  d->file = h5::open_file(path, "the file may be truncated (an interrupted write or copy); write or export it again");
  const std::string at = fmt::format("weights file '{}'", path);
  const auto magic = h5::read_string_attr(d->file, "magic", at);
  LOOM_CHECK(magic == kWeightsMagic,
             magic == "loom-tokens" ? std::string("this is a token dataset (data.train / data.val), not weights")
                                    : std::string("pass a file written by loom (write_weights)"),
             "'{}' is not a loom weights file (its magic attribute is {}, expected '{}')", path,
             magic ? "'" + *magic + "'" : std::string("missing"), kWeightsMagic);
  const std::int64_t version = h5::read_int_attr(d->file, "format_version", at).value_or(-1);
  LOOM_CHECK(version == kWeightsFormatVersion, "write it again with this version of loom",
             "'{}' has weights format version {}; this build reads version {}", path, version, kWeightsFormatVersion);
  d->config = h5::read_string_attr(d->file, "config", at).value_or("{}");
  d->architecture = h5::read_string_attr(d->file, "architecture", at).value_or("");

  Listing listing;
  if (H5Literate(d->file, H5_INDEX_CRT_ORDER, H5_ITER_INC, nullptr, collect_dataset, &listing) < 0) {
    H5Eclear2(H5E_DEFAULT);  // creation order not tracked (e.g. written by h5py): name order
    listing.names.clear();
    h5::check_status(H5Literate(d->file, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_dataset, &listing),
                     at + ": cannot list its datasets");
  }
  for (const std::string& name : listing.names) {
    h5::Handle dset = h5::open_dataset(d->file, name, fmt::format("{}: cannot open '{}'", at, name));
    d->shapes[name] = h5::shape_of(dset);
    d->order.push_back(name);
  }
  return WeightsReader(std::move(d));
}

const std::string& WeightsReader::path() const { return impl_->path; }
const std::string& WeightsReader::config_json() const { return impl_->config; }
const std::string& WeightsReader::architecture() const { return impl_->architecture; }
std::optional<std::string> WeightsReader::string_attr(const std::string& name) const {
  return h5::read_string_attr(impl_->file, name, fmt::format("weights file '{}'", impl_->path));
}
bool WeightsReader::has(const std::string& name) const { return impl_->shapes.count(name) > 0; }
std::vector<std::string> WeightsReader::names() const { return impl_->order; }
std::vector<std::int64_t> WeightsReader::shape(const std::string& name) const { return impl_->shape_of(name); }

void WeightsReader::read(const std::string& name, float* out, std::int64_t count) const {
  const auto& shape = impl_->shape_of(name);
  LOOM_CHECK(numel(shape) == count, "the weights were written for another model configuration",
             "weights file '{}': parameter '{}' has shape {} ({} values), but {} values were asked for",
             impl_->path, name, shape_string(shape), numel(shape), count);
  h5::Handle dset = h5::open_dataset(impl_->file, name, fmt::format("weights file '{}': cannot open '{}'",
                                                                    impl_->path, name));
  const std::string type = h5::type_name(dset);
  LOOM_CHECK(type.rfind("float", 0) == 0, "store parameters as floating point (float32)",
             "weights file '{}': parameter '{}' is {}, not floating point", impl_->path, name, type);
  if (count == 0) return;
  h5::check_status(H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
                   fmt::format("weights file '{}': cannot read '{}'", impl_->path, name),
                   "the file may be corrupt; write or export it again");
}

void WeightsReader::read(const std::string& name, const std::vector<std::int64_t>& expected_shape,
                         float* out) const {
  const auto& shape = impl_->shape_of(name);
  LOOM_CHECK(shape == expected_shape,
             "the weights were written for another model configuration; compare the file's config attribute "
             "with the run's model settings",
             "weights file '{}': parameter '{}' has shape {}, the model expects {}", impl_->path, name,
             shape_string(shape), shape_string(expected_shape));
  read(name, out, numel(shape));
}

}  // namespace loom
