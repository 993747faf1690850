// A TF.js graph-model interpreter for the Universal Sentence Encoder lite graph.
//
// Tensors are float32, int32 (TF's int64 is held as int32, as TF.js does) or bool (held
// as int32 0/1). Operations take numpy broadcasting where TF does. Each operation checks
// the shapes it relies on and fails with kInternal naming the node, so a graph this
// interpreter misreads stops with an error instead of returning a wrong vector.
//
// Heavy work is in MatMul, Conv2D (only 1×1 kernels, which are matrix products) and
// BatchMatMul; the rest moves small tensors around.
#include "embedding/use_model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <span>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace engram::embedding {

using Json = nlohmann::json;

namespace {

enum class DType { kFloat, kInt, kBool };

struct Tensor {
  DType dtype = DType::kFloat;
  std::vector<int64_t> shape;
  std::vector<float> f;    // kFloat
  std::vector<int32_t> i;  // kInt, kBool

  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  bool is_float() const { return dtype == DType::kFloat; }
};
using TensorPtr = std::shared_ptr<const Tensor>;

std::shared_ptr<Tensor> NewTensor(DType dtype, std::vector<int64_t> shape) {
  auto t = std::make_shared<Tensor>();
  t->dtype = dtype;
  t->shape = std::move(shape);
  const auto n = static_cast<size_t>(t->size());
  if (dtype == DType::kFloat) {
    t->f.assign(n, 0.0f);
  } else {
    t->i.assign(n, 0);
  }
  return t;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? "," : "") + std::to_string(shape[k]);
  return s + "]";
}

// Row-major strides of `shape`.
std::vector<int64_t> Strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t k = static_cast<int64_t>(shape.size()) - 2; k >= 0; --k) {
    s[static_cast<size_t>(k)] = s[static_cast<size_t>(k) + 1] * shape[static_cast<size_t>(k) + 1];
  }
  return s;
}

// The values of an int tensor (a scalar is one value).
std::vector<int64_t> IntValues(const Tensor& t) { return std::vector<int64_t>(t.i.begin(), t.i.end()); }

// ---- attributes -------------------------------------------------------------------------

int64_t AttrInt(const Json& attr, const char* key, int64_t fallback) {
  auto it = attr.find(key);
  if (it == attr.end() || !it->is_object()) return fallback;
  auto v = it->find("i");
  if (v == it->end()) return fallback;
  if (v->is_string()) return std::strtoll(v->get_ref<const std::string&>().c_str(), nullptr, 10);
  if (v->is_number_integer()) return v->get<int64_t>();
  return fallback;
}

bool AttrBool(const Json& attr, const char* key, bool fallback) {
  auto it = attr.find(key);
  if (it == attr.end() || !it->is_object()) return fallback;
  auto v = it->find("b");
  return v != it->end() && v->is_boolean() ? v->get<bool>() : fallback;
}

std::vector<int64_t> AttrInts(const Json& attr, const char* key) {
  std::vector<int64_t> out;
  auto it = attr.find(key);
  if (it == attr.end() || !it->is_object()) return out;
  auto list = it->find("list");
  if (list == it->end() || !list->is_object()) return out;
  auto values = list->find("i");
  if (values == list->end() || !values->is_array()) return out;
  for (const Json& v : *values) {
    if (v.is_string()) out.push_back(std::strtoll(v.get_ref<const std::string&>().c_str(), nullptr, 10));
    if (v.is_number_integer()) out.push_back(v.get<int64_t>());
  }
  return out;
}

// A string attribute: TF.js model.json holds it as an array of bytes (or base64 text).
std::string AttrString(const Json& attr, const char* key) {
  auto it = attr.find(key);
  if (it == attr.end() || !it->is_object()) return {};
  auto v = it->find("s");
  if (v == it->end()) return {};
  if (v->is_string()) return v->get<std::string>();
  std::string out;
  if (v->is_array()) {
    for (const Json& b : *v) {
      if (b.is_number_integer()) out.push_back(static_cast<char>(b.get<int>()));
    }
  }
  return out;
}

// ---- the graph --------------------------------------------------------------------------

struct Node;
using OpFn = std::function<Status(const Node&, std::span<const TensorPtr>, std::vector<TensorPtr>&)>;

struct Node {
  std::string name;
  std::string op;
  std::vector<std::pair<size_t, size_t>> inputs;  // (node, output)
  Json attr;
  TensorPtr value;  // Const
  OpFn fn;
};

Status OpError(const Node& n, const std::string& what) {
  return InternalError("USE graph: " + n.op + " node " + n.name + ": " + what);
}

#define USE_REQUIRE(cond, node, what) \
  do {                                \
    if (!(cond)) return OpError(node, what); \
  } while (0)

int64_t NormaliseAxis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

// ---- elementwise ------------------------------------------------------------------------

// Broadcast shape of `a` and `b` (numpy rules); false if they do not broadcast.
bool BroadcastShape(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::vector<int64_t>& out) {
  const size_t rank = std::max(a.size(), b.size());
  out.assign(rank, 1);
  for (size_t k = 0; k < rank; ++k) {
    const int64_t da = k < rank - a.size() ? 1 : a[k - (rank - a.size())];
    const int64_t db = k < rank - b.size() ? 1 : b[k - (rank - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    out[k] = da == 1 ? db : da;
  }
  return true;
}

// For each element of `out_shape`, the flat index into a tensor of `shape` broadcast to it.
std::vector<int64_t> BroadcastIndex(const std::vector<int64_t>& shape, const std::vector<int64_t>& out_shape) {
  const size_t rank = out_shape.size();
  std::vector<int64_t> strides(rank, 0);
  const std::vector<int64_t> own = Strides(shape);
  for (size_t k = 0; k < shape.size(); ++k) {
    const size_t o = k + (rank - shape.size());
    strides[o] = shape[k] == 1 ? 0 : own[k];
  }
  int64_t total = 1;
  for (int64_t d : out_shape) total *= d;
  std::vector<int64_t> index(static_cast<size_t>(total));
  std::vector<int64_t> at(rank, 0);
  int64_t flat = 0;
  for (int64_t e = 0; e < total; ++e) {
    index[static_cast<size_t>(e)] = flat;
    for (int64_t k = static_cast<int64_t>(rank) - 1; k >= 0; --k) {
      const auto uk = static_cast<size_t>(k);
      ++at[uk];
      flat += strides[uk];
      if (at[uk] < out_shape[uk]) break;
      flat -= strides[uk] * at[uk];
      at[uk] = 0;
    }
  }
  return index;
}

template <typename T, typename F>
void BroadcastApply(const std::vector<T>& a, const std::vector<int64_t>& ashape, const std::vector<T>& b,
                    const std::vector<int64_t>& bshape, const std::vector<int64_t>& out_shape, auto& out, F f) {
  const size_t n = out.size();
  if (ashape == out_shape && bshape == out_shape) {
    for (size_t e = 0; e < n; ++e) out[e] = f(a[e], b[e]);
  } else if (ashape == out_shape && b.size() == 1) {
    const T y = b[0];
    for (size_t e = 0; e < n; ++e) out[e] = f(a[e], y);
  } else if (bshape == out_shape && a.size() == 1) {
    const T x = a[0];
    for (size_t e = 0; e < n; ++e) out[e] = f(x, b[e]);
  } else {
    const std::vector<int64_t> ia = BroadcastIndex(ashape, out_shape);
    const std::vector<int64_t> ib = BroadcastIndex(bshape, out_shape);
    for (size_t e = 0; e < n; ++e) out[e] = f(a[static_cast<size_t>(ia[e])], b[static_cast<size_t>(ib[e])]);
  }
}

enum class Arith { kAdd, kSub, kMul, kDiv, kMax };

OpFn MakeArith(Arith kind) {
  return [kind](const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) -> Status {
    USE_REQUIRE(in.size() == 2, n, "wants 2 inputs");
    const Tensor& a = *in[0];
    const Tensor& b = *in[1];
    USE_REQUIRE(a.dtype == b.dtype && a.dtype != DType::kBool, n, "operands of different or bool types");
    std::vector<int64_t> shape;
    USE_REQUIRE(BroadcastShape(a.shape, b.shape, shape), n,
                "shapes " + ShapeString(a.shape) + " and " + ShapeString(b.shape) + " do not broadcast");
    auto r = NewTensor(a.dtype, shape);
    if (a.is_float()) {
      switch (kind) {
        case Arith::kAdd: BroadcastApply(a.f, a.shape, b.f, b.shape, shape, r->f, std::plus<float>()); break;
        case Arith::kSub: BroadcastApply(a.f, a.shape, b.f, b.shape, shape, r->f, std::minus<float>()); break;
        case Arith::kMul: BroadcastApply(a.f, a.shape, b.f, b.shape, shape, r->f, std::multiplies<float>()); break;
        case Arith::kDiv: BroadcastApply(a.f, a.shape, b.f, b.shape, shape, r->f, std::divides<float>()); break;
        case Arith::kMax:
          BroadcastApply(a.f, a.shape, b.f, b.shape, shape, r->f, [](float x, float y) { return std::max(x, y); });
          break;
      }
    } else {
      switch (kind) {
        case Arith::kAdd: BroadcastApply(a.i, a.shape, b.i, b.shape, shape, r->i, std::plus<int32_t>()); break;
        case Arith::kSub: BroadcastApply(a.i, a.shape, b.i, b.shape, shape, r->i, std::minus<int32_t>()); break;
        case Arith::kMul: BroadcastApply(a.i, a.shape, b.i, b.shape, shape, r->i, std::multiplies<int32_t>()); break;
        case Arith::kDiv:
          BroadcastApply(a.i, a.shape, b.i, b.shape, shape, r->i,
                         [](int32_t x, int32_t y) { return y == 0 ? 0 : x / y; });
          break;
        case Arith::kMax:
          BroadcastApply(a.i, a.shape, b.i, b.shape, shape, r->i,
                         [](int32_t x, int32_t y) { return std::max(x, y); });
          break;
      }
    }
    out = {std::move(r)};
    return OkStatus();
  };
}

OpFn MakeCompare(bool less) {
  return [less](const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) -> Status {
    USE_REQUIRE(in.size() == 2, n, "wants 2 inputs");
    const Tensor& a = *in[0];
    const Tensor& b = *in[1];
    USE_REQUIRE(a.dtype == b.dtype, n, "operands of different types");
    std::vector<int64_t> shape;
    USE_REQUIRE(BroadcastShape(a.shape, b.shape, shape), n, "shapes do not broadcast");
    auto r = NewTensor(DType::kBool, shape);
    if (a.is_float()) {
      BroadcastApply(a.f, a.shape, b.f, b.shape, shape, r->i,
                     [less](float x, float y) { return static_cast<int32_t>(less ? x < y : x > y); });
    } else {
      BroadcastApply(a.i, a.shape, b.i, b.shape, shape, r->i,
                     [less](int32_t x, int32_t y) { return static_cast<int32_t>(less ? x < y : x > y); });
    }
    out = {std::move(r)};
    return OkStatus();
  };
}

OpFn MakeUnaryFloat(float (*f)(float)) {
  return [f](const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) -> Status {
    USE_REQUIRE(in.size() == 1 && in[0]->is_float(), n, "wants one float input");
    auto r = NewTensor(DType::kFloat, in[0]->shape);
    for (size_t e = 0; e < r->f.size(); ++e) r->f[e] = f(in[0]->f[e]);
    out = {std::move(r)};
    return OkStatus();
  };
}

Status LogicalNot(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 1 && in[0]->dtype == DType::kBool, n, "wants one bool input");
  auto r = NewTensor(DType::kBool, in[0]->shape);
  for (size_t e = 0; e < r->i.size(); ++e) r->i[e] = in[0]->i[e] ? 0 : 1;
  out = {std::move(r)};
  return OkStatus();
}

// TF DataType enum values the graph uses.
std::optional<DType> DTypeOfTf(int64_t tf) {
  switch (tf) {
    case 1: return DType::kFloat;   // DT_FLOAT
    case 3: return DType::kInt;     // DT_INT32
    case 9: return DType::kInt;     // DT_INT64 (held as int32, as in TF.js)
    case 10: return DType::kBool;   // DT_BOOL
    default: return std::nullopt;
  }
}

int64_t AttrType(const Json& attr, const char* key) {
  auto it = attr.find(key);
  if (it == attr.end() || !it->is_object()) return -1;
  auto v = it->find("type");
  if (v == it->end()) return -1;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_string()) {  // "DT_FLOAT" style
    const std::string& s = v->get_ref<const std::string&>();
    if (s == "DT_FLOAT") return 1;
    if (s == "DT_INT32") return 3;
    if (s == "DT_INT64") return 9;
    if (s == "DT_BOOL") return 10;
  }
  return -1;
}

Status Cast(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 1, n, "wants one input");
  std::optional<DType> to = DTypeOfTf(AttrType(n.attr, "DstT"));
  USE_REQUIRE(to.has_value(), n, "unsupported DstT");
  const Tensor& a = *in[0];
  auto r = NewTensor(*to, a.shape);
  const size_t count = static_cast<size_t>(a.size());
  for (size_t e = 0; e < count; ++e) {
    const double v = a.is_float() ? static_cast<double>(a.f[e]) : static_cast<double>(a.i[e]);
    switch (*to) {
      case DType::kFloat: r->f[e] = static_cast<float>(v); break;
      case DType::kInt: r->i[e] = static_cast<int32_t>(v); break;
      case DType::kBool: r->i[e] = v != 0 ? 1 : 0; break;
    }
  }
  out = {std::move(r)};
  return OkStatus();
}

// ---- shapes ------------------------------------------------------------------------------

// A tensor with `a`'s data under another shape (shares nothing: data is copied once).
TensorPtr Reshaped(const Tensor& a, std::vector<int64_t> shape) {
  auto r = std::make_shared<Tensor>(a);
  r->shape = std::move(shape);
  return r;
}

Status Reshape(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 2 && in[1]->dtype == DType::kInt, n, "wants a tensor and an int shape");
  std::vector<int64_t> shape = IntValues(*in[1]);
  int64_t known = 1;
  int unknown = -1;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == -1) {
      USE_REQUIRE(unknown < 0, n, "more than one -1 in the shape");
      unknown = static_cast<int>(k);
    } else {
      known *= shape[k];
    }
  }
  const int64_t total = in[0]->size();
  if (unknown >= 0) {
    USE_REQUIRE(known > 0 && total % known == 0, n, "cannot infer -1 of " + ShapeString(shape));
    shape[static_cast<size_t>(unknown)] = total / known;
  }
  int64_t product = 1;
  for (int64_t d : shape) product *= d;
  USE_REQUIRE(product == total, n,
              "cannot reshape " + ShapeString(in[0]->shape) + " to " + ShapeString(shape));
  out = {Reshaped(*in[0], std::move(shape))};
  return OkStatus();
}

Status ShapeOp(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 1, n, "wants one input");
  auto r = NewTensor(DType::kInt, {in[0]->rank()});
  for (size_t k = 0; k < in[0]->shape.size(); ++k) r->i[k] = static_cast<int32_t>(in[0]->shape[k]);
  out = {std::move(r)};
  return OkStatus();
}

Status ExpandDims(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 2 && in[1]->size() == 1, n, "wants a tensor and a scalar dim");
  const int64_t rank = in[0]->rank();
  int64_t dim = in[1]->i[0];
  if (dim < 0) dim += rank + 1;
  USE_REQUIRE(dim >= 0 && dim <= rank, n, "dim out of range");
  std::vector<int64_t> shape = in[0]->shape;
  shape.insert(shape.begin() + dim, 1);
  out = {Reshaped(*in[0], std::move(shape))};
  return OkStatus();
}

Status Squeeze(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 1, n, "wants one input");
  const int64_t rank = in[0]->rank();
  std::vector<int64_t> dims = AttrInts(n.attr, "squeeze_dims");
  std::vector<bool> drop(static_cast<size_t>(rank), false);
  if (dims.empty()) {
    for (int64_t k = 0; k < rank; ++k) drop[static_cast<size_t>(k)] = in[0]->shape[static_cast<size_t>(k)] == 1;
  }
  for (int64_t d : dims) {
    d = NormaliseAxis(d, rank);
    USE_REQUIRE(d >= 0 && d < rank && in[0]->shape[static_cast<size_t>(d)] == 1, n,
                "cannot squeeze dim " + std::to_string(d) + " of " + ShapeString(in[0]->shape));
    drop[static_cast<size_t>(d)] = true;
  }
  std::vector<int64_t> shape;
  for (int64_t k = 0; k < rank; ++k) {
    if (!drop[static_cast<size_t>(k)]) shape.push_back(in[0]->shape[static_cast<size_t>(k)]);
  }
  out = {Reshaped(*in[0], std::move(shape))};
  return OkStatus();
}

// Copies the elements of `src` at the positions of `out_shape`, reading dimension k at
// begin[k] + i × step[k].
void StridedCopy(const Tensor& src, const std::vector<int64_t>& begin, const std::vector<int64_t>& step,
                 const std::vector<int64_t>& out_shape, Tensor& dst) {
  const size_t rank = out_shape.size();
  const std::vector<int64_t> strides = Strides(src.shape);
  int64_t total = 1;
  for (int64_t d : out_shape) total *= d;
  if (total == 0) return;
  std::vector<int64_t> at(rank, 0);
  int64_t flat = 0;
  for (size_t k = 0; k < rank; ++k) flat += begin[k] * strides[k];
  for (int64_t e = 0; e < total; ++e) {
    if (src.is_float()) {
      dst.f[static_cast<size_t>(e)] = src.f[static_cast<size_t>(flat)];
    } else {
      dst.i[static_cast<size_t>(e)] = src.i[static_cast<size_t>(flat)];
    }
    for (int64_t k = static_cast<int64_t>(rank) - 1; k >= 0; --k) {
      const auto uk = static_cast<size_t>(k);
      ++at[uk];
      flat += step[uk] * strides[uk];
      if (at[uk] < out_shape[uk]) break;
      flat -= step[uk] * strides[uk] * at[uk];
      at[uk] = 0;
    }
  }
}

Status StridedSlice(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 4, n, "wants input, begin, end, strides");
  USE_REQUIRE(AttrInt(n.attr, "ellipsis_mask", 0) == 0 && AttrInt(n.attr, "new_axis_mask", 0) == 0, n,
              "ellipsis_mask and new_axis_mask are not supported");
  const Tensor& a = *in[0];
  const std::vector<int64_t> b = IntValues(*in[1]);
  const std::vector<int64_t> e = IntValues(*in[2]);
  const std::vector<int64_t> s = IntValues(*in[3]);
  USE_REQUIRE(b.size() == e.size() && b.size() == s.size() && static_cast<int64_t>(b.size()) <= a.rank(), n,
              "begin/end/strides lengths");
  const int64_t begin_mask = AttrInt(n.attr, "begin_mask", 0);
  const int64_t end_mask = AttrInt(n.attr, "end_mask", 0);
  const int64_t shrink_mask = AttrInt(n.attr, "shrink_axis_mask", 0);
  const size_t rank = a.shape.size();
  std::vector<int64_t> begin(rank, 0), step(rank, 1), sliced(rank, 0), out_shape;
  for (size_t k = 0; k < rank; ++k) {
    const int64_t dim = a.shape[k];
    if (k >= b.size()) {
      sliced[k] = dim;
      out_shape.push_back(dim);
      continue;
    }
    const int64_t st = s[k];
    USE_REQUIRE(st != 0, n, "zero stride");
    const bool shrink = (shrink_mask >> k) & 1;
    int64_t lo = b[k];
    if (lo < 0) lo += dim;
    if (shrink) {
      USE_REQUIRE(lo >= 0 && lo < dim, n, "shrink index out of range");
      begin[k] = lo;
      step[k] = 1;
      sliced[k] = 1;
      continue;
    }
    int64_t hi = e[k];
    if (hi < 0) hi += dim;
    if (st > 0) {
      lo = (begin_mask >> k) & 1 ? 0 : std::clamp<int64_t>(lo, 0, dim);
      hi = (end_mask >> k) & 1 ? dim : std::clamp<int64_t>(hi, 0, dim);
    } else {
      lo = (begin_mask >> k) & 1 ? dim - 1 : std::clamp<int64_t>(lo, -1, dim - 1);
      hi = (end_mask >> k) & 1 ? -1 : std::clamp<int64_t>(hi, -1, dim - 1);
    }
    const int64_t length = st > 0 ? std::max<int64_t>(0, (hi - lo + st - 1) / st)
                                   : std::max<int64_t>(0, (lo - hi + (-st) - 1) / (-st));
    begin[k] = length > 0 ? lo : 0;
    step[k] = st;
    sliced[k] = length;
    out_shape.push_back(length);
  }
  auto r = NewTensor(a.dtype, sliced);
  StridedCopy(a, begin, step, sliced, *r);
  r->shape = out_shape;
  out = {std::move(r)};
  return OkStatus();
}

Status Slice(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 3, n, "wants input, begin, size");
  const Tensor& a = *in[0];
  const std::vector<int64_t> b = IntValues(*in[1]);
  const std::vector<int64_t> sz = IntValues(*in[2]);
  USE_REQUIRE(static_cast<int64_t>(b.size()) == a.rank() && b.size() == sz.size(), n, "begin/size lengths");
  std::vector<int64_t> shape(b.size()), step(b.size(), 1);
  for (size_t k = 0; k < b.size(); ++k) {
    shape[k] = sz[k] == -1 ? a.shape[k] - b[k] : sz[k];
    USE_REQUIRE(b[k] >= 0 && shape[k] >= 0 && b[k] + shape[k] <= a.shape[k], n, "slice out of range");
  }
  auto r = NewTensor(a.dtype, shape);
  StridedCopy(a, b, step, shape, *r);
  out = {std::move(r)};
  return OkStatus();
}

Status Transpose(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 2, n, "wants input and perm");
  const Tensor& a = *in[0];
  const std::vector<int64_t> perm = IntValues(*in[1]);
  USE_REQUIRE(static_cast<int64_t>(perm.size()) == a.rank(), n, "perm length");
  const std::vector<int64_t> strides = Strides(a.shape);
  std::vector<int64_t> shape(perm.size()), step(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) {
    USE_REQUIRE(perm[k] >= 0 && perm[k] < a.rank(), n, "perm value");
    shape[k] = a.shape[static_cast<size_t>(perm[k])];
    step[k] = strides[static_cast<size_t>(perm[k])];
  }
  auto r = NewTensor(a.dtype, shape);
  const size_t rank = shape.size();
  std::vector<int64_t> at(rank, 0);
  int64_t flat = 0;
  const int64_t total = r->size();
  for (int64_t e = 0; e < total; ++e) {
    if (a.is_float()) {
      r->f[static_cast<size_t>(e)] = a.f[static_cast<size_t>(flat)];
    } else {
      r->i[static_cast<size_t>(e)] = a.i[static_cast<size_t>(flat)];
    }
    for (int64_t k = static_cast<int64_t>(rank) - 1; k >= 0; --k) {
      const auto uk = static_cast<size_t>(k);
      ++at[uk];
      flat += step[uk];
      if (at[uk] < shape[uk]) break;
      flat -= step[uk] * at[uk];
      at[uk] = 0;
    }
  }
  out = {std::move(r)};
  return OkStatus();
}

// Concatenates `parts` along `axis` (all of one dtype, equal elsewhere).
Result<TensorPtr> ConcatTensors(const Node& n, const std::vector<const Tensor*>& parts, int64_t axis) {
  if (parts.empty()) return OpError(n, "nothing to concatenate");
  const Tensor& first = *parts[0];
  axis = NormaliseAxis(axis, first.rank());
  if (axis < 0 || axis >= first.rank()) return OpError(n, "axis out of range");
  std::vector<int64_t> shape = first.shape;
  shape[static_cast<size_t>(axis)] = 0;
  for (const Tensor* p : parts) {
    if (p->dtype != first.dtype || p->rank() != first.rank()) return OpError(n, "parts differ in type or rank");
    for (size_t k = 0; k < shape.size(); ++k) {
      if (static_cast<int64_t>(k) != axis && p->shape[k] != first.shape[k]) {
        return OpError(n, "parts differ in shape: " + ShapeString(p->shape) + " vs " + ShapeString(first.shape));
      }
    }
    shape[static_cast<size_t>(axis)] += p->shape[static_cast<size_t>(axis)];
  }
  int64_t outer = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= shape[static_cast<size_t>(k)];
  auto r = NewTensor(first.dtype, shape);
  int64_t written = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor* p : parts) {
      const int64_t chunk = outer == 0 ? 0 : p->size() / outer;
      if (first.is_float()) {
        std::copy_n(p->f.begin() + o * chunk, chunk, r->f.begin() + written);
      } else {
        std::copy_n(p->i.begin() + o * chunk, chunk, r->i.begin() + written);
      }
      written += chunk;
    }
  }
  return TensorPtr(std::move(r));
}

Status ConcatV2(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() >= 2 && in.back()->size() == 1, n, "wants parts and a scalar axis");
  std::vector<const Tensor*> parts;
  for (size_t k = 0; k + 1 < in.size(); ++k) parts.push_back(in[k].get());
  ENGRAM_ASSIGN_OR_RETURN(TensorPtr r, ConcatTensors(n, parts, in.back()->i[0]));
  out = {std::move(r)};
  return OkStatus();
}

Status Pack(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(!in.empty(), n, "wants inputs");
  const int64_t axis = NormaliseAxis(AttrInt(n.attr, "axis", 0), in[0]->rank() + 1);
  USE_REQUIRE(axis >= 0 && axis <= in[0]->rank(), n, "axis out of range");
  std::vector<TensorPtr> expanded;
  std::vector<const Tensor*> parts;
  for (const TensorPtr& t : in) {
    std::vector<int64_t> shape = t->shape;
    shape.insert(shape.begin() + axis, 1);
    expanded.push_back(Reshaped(*t, std::move(shape)));
    parts.push_back(expanded.back().get());
  }
  ENGRAM_ASSIGN_OR_RETURN(TensorPtr r, ConcatTensors(n, parts, axis));
  out = {std::move(r)};
  return OkStatus();
}

Status SplitV(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 3 && in[2]->size() == 1, n, "wants value, size_splits, axis");
  const Tensor& a = *in[0];
  const int64_t axis = NormaliseAxis(in[2]->i[0], a.rank());
  USE_REQUIRE(axis >= 0 && axis < a.rank(), n, "axis out of range");
  std::vector<int64_t> sizes = IntValues(*in[1]);
  const int64_t dim = a.shape[static_cast<size_t>(axis)];
  int64_t known = 0;
  int unknown = -1;
  for (size_t k = 0; k < sizes.size(); ++k) {
    if (sizes[k] == -1) {
      unknown = static_cast<int>(k);
    } else {
      known += sizes[k];
    }
  }
  if (unknown >= 0) sizes[static_cast<size_t>(unknown)] = dim - known;
  USE_REQUIRE(std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) == dim, n, "splits do not add up");
  out.clear();
  int64_t offset = 0;
  for (int64_t size : sizes) {
    std::vector<int64_t> begin(a.shape.size(), 0), step(a.shape.size(), 1), shape = a.shape;
    begin[static_cast<size_t>(axis)] = offset;
    shape[static_cast<size_t>(axis)] = size;
    auto r = NewTensor(a.dtype, shape);
    StridedCopy(a, begin, step, shape, *r);
    out.push_back(std::move(r));
    offset += size;
  }
  return OkStatus();
}

Status Range(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 3, n, "wants start, limit, delta");
  if (in[0]->is_float()) {
    const float start = in[0]->f[0], limit = in[1]->f[0], delta = in[2]->f[0];
    USE_REQUIRE(delta != 0, n, "zero delta");
    const auto count = static_cast<int64_t>(std::max(0.0, std::ceil((limit - start) / static_cast<double>(delta))));
    auto r = NewTensor(DType::kFloat, {count});
    for (int64_t k = 0; k < count; ++k) r->f[static_cast<size_t>(k)] = start + static_cast<float>(k) * delta;
    out = {std::move(r)};
    return OkStatus();
  }
  const int64_t start = in[0]->i[0], limit = in[1]->i[0], delta = in[2]->i[0];
  USE_REQUIRE(delta != 0, n, "zero delta");
  const int64_t count = delta > 0 ? std::max<int64_t>(0, (limit - start + delta - 1) / delta)
                                  : std::max<int64_t>(0, (start - limit - delta - 1) / -delta);
  auto r = NewTensor(DType::kInt, {count});
  for (int64_t k = 0; k < count; ++k) r->i[static_cast<size_t>(k)] = static_cast<int32_t>(start + k * delta);
  out = {std::move(r)};
  return OkStatus();
}

// ---- gathers and scatters ---------------------------------------------------------------

Status GatherV2(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 3 && in[1]->dtype == DType::kInt && in[2]->size() == 1, n,
              "wants params, int indices, scalar axis");
  USE_REQUIRE(AttrInt(n.attr, "batch_dims", 0) == 0, n, "batch_dims is not supported");
  const Tensor& p = *in[0];
  const Tensor& idx = *in[1];
  const int64_t axis = NormaliseAxis(in[2]->i[0], p.rank());
  USE_REQUIRE(axis >= 0 && axis < p.rank(), n, "axis out of range");
  std::vector<int64_t> shape(p.shape.begin(), p.shape.begin() + axis);
  shape.insert(shape.end(), idx.shape.begin(), idx.shape.end());
  shape.insert(shape.end(), p.shape.begin() + axis + 1, p.shape.end());
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= p.shape[static_cast<size_t>(k)];
  for (int64_t k = axis + 1; k < p.rank(); ++k) inner *= p.shape[static_cast<size_t>(k)];
  const int64_t dim = p.shape[static_cast<size_t>(axis)];
  auto r = NewTensor(p.dtype, shape);
  const auto count = static_cast<int64_t>(idx.i.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < count; ++j) {
      const int64_t at = idx.i[static_cast<size_t>(j)];
      USE_REQUIRE(at >= 0 && at < dim, n, "index " + std::to_string(at) + " out of range [0, " + std::to_string(dim) + ")");
      const int64_t from = (o * dim + at) * inner;
      const int64_t to = (o * count + j) * inner;
      if (p.is_float()) {
        std::copy_n(p.f.begin() + from, inner, r->f.begin() + to);
      } else {
        std::copy_n(p.i.begin() + from, inner, r->i.begin() + to);
      }
    }
  }
  out = {std::move(r)};
  return OkStatus();
}

Status GatherNd(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 2 && in[1]->dtype == DType::kInt && in[1]->rank() >= 1, n, "wants params, int indices");
  const Tensor& p = *in[0];
  const Tensor& idx = *in[1];
  const int64_t depth = idx.shape.back();
  USE_REQUIRE(depth <= p.rank(), n, "index depth above the rank");
  std::vector<int64_t> shape(idx.shape.begin(), idx.shape.end() - 1);
  shape.insert(shape.end(), p.shape.begin() + depth, p.shape.end());
  int64_t inner = 1;
  for (int64_t k = depth; k < p.rank(); ++k) inner *= p.shape[static_cast<size_t>(k)];
  const std::vector<int64_t> strides = Strides(p.shape);
  const int64_t count = depth == 0 ? 0 : idx.size() / depth;
  auto r = NewTensor(p.dtype, shape);
  for (int64_t j = 0; j < count; ++j) {
    int64_t from = 0;
    for (int64_t k = 0; k < depth; ++k) {
      const int64_t at = idx.i[static_cast<size_t>(j * depth + k)];
      USE_REQUIRE(at >= 0 && at < p.shape[static_cast<size_t>(k)], n, "index out of range");
      from += at * strides[static_cast<size_t>(k)];
    }
    if (p.is_float()) {
      std::copy_n(p.f.begin() + from, inner, r->f.begin() + j * inner);
    } else {
      std::copy_n(p.i.begin() + from, inner, r->i.begin() + j * inner);
    }
  }
  out = {std::move(r)};
  return OkStatus();
}

Status ScatterNd(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 3 && in[0]->dtype == DType::kInt && in[0]->rank() >= 1, n,
              "wants int indices, updates, shape");
  const Tensor& idx = *in[0];
  const Tensor& upd = *in[1];
  const std::vector<int64_t> shape = IntValues(*in[2]);
  const int64_t depth = idx.shape.back();
  USE_REQUIRE(depth <= static_cast<int64_t>(shape.size()), n, "index depth above the rank");
  int64_t inner = 1;
  for (size_t k = static_cast<size_t>(depth); k < shape.size(); ++k) inner *= shape[k];
  const std::vector<int64_t> strides = Strides(shape);
  const int64_t count = depth == 0 ? 0 : idx.size() / depth;
  USE_REQUIRE(upd.size() == count * inner, n, "updates " + ShapeString(upd.shape) + " do not fit");
  auto r = NewTensor(upd.dtype, shape);
  for (int64_t j = 0; j < count; ++j) {
    int64_t to = 0;
    for (int64_t k = 0; k < depth; ++k) {
      const int64_t at = idx.i[static_cast<size_t>(j * depth + k)];
      USE_REQUIRE(at >= 0 && at < shape[static_cast<size_t>(k)], n, "index out of range");
      to += at * strides[static_cast<size_t>(k)];
    }
    for (int64_t e = 0; e < inner; ++e) {
      if (upd.is_float()) {
        r->f[static_cast<size_t>(to + e)] += upd.f[static_cast<size_t>(j * inner + e)];
      } else {
        r->i[static_cast<size_t>(to + e)] += upd.i[static_cast<size_t>(j * inner + e)];
      }
    }
  }
  out = {std::move(r)};
  return OkStatus();
}

Status SparseToDense(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 4 && in[0]->dtype == DType::kInt, n, "wants indices, shape, values, default");
  const Tensor& idx = *in[0];
  const std::vector<int64_t> shape = IntValues(*in[1]);
  const Tensor& values = *in[2];
  const Tensor& fallback = *in[3];
  USE_REQUIRE(values.dtype == fallback.dtype && fallback.size() == 1, n, "values and default");
  const int64_t depth = idx.rank() <= 1 ? 1 : idx.shape[1];
  USE_REQUIRE(depth == static_cast<int64_t>(shape.size()), n, "index depth differs from the rank");
  const int64_t count = idx.rank() == 0 ? 1 : idx.shape[0];
  USE_REQUIRE(values.size() == 1 || values.size() == count, n, "values length");
  auto r = NewTensor(values.dtype, shape);
  if (r->is_float()) {
    std::fill(r->f.begin(), r->f.end(), fallback.f[0]);
  } else {
    std::fill(r->i.begin(), r->i.end(), fallback.i[0]);
  }
  const std::vector<int64_t> strides = Strides(shape);
  for (int64_t j = 0; j < count; ++j) {
    int64_t to = 0;
    for (int64_t k = 0; k < depth; ++k) {
      const int64_t at = idx.i[static_cast<size_t>(j * depth + k)];
      USE_REQUIRE(at >= 0 && at < shape[static_cast<size_t>(k)], n, "index out of range");
      to += at * strides[static_cast<size_t>(k)];
    }
    const auto from = static_cast<size_t>(values.size() == 1 ? 0 : j);
    if (r->is_float()) {
      r->f[static_cast<size_t>(to)] = values.f[from];
    } else {
      r->i[static_cast<size_t>(to)] = values.i[from];
    }
  }
  out = {std::move(r)};
  return OkStatus();
}

Status Where(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 1 && in[0]->dtype == DType::kBool, n, "wants one bool input");
  const Tensor& a = *in[0];
  const int64_t rank = a.rank();
  const std::vector<int64_t> strides = Strides(a.shape);
  std::vector<int32_t> coords;
  for (int64_t e = 0; e < a.size(); ++e) {
    if (!a.i[static_cast<size_t>(e)]) continue;
    int64_t rest = e;
    for (int64_t k = 0; k < rank; ++k) {
      coords.push_back(static_cast<int32_t>(rest / strides[static_cast<size_t>(k)]));
      rest %= strides[static_cast<size_t>(k)];
    }
  }
  auto r = std::make_shared<Tensor>();
  r->dtype = DType::kInt;
  r->shape = {rank == 0 ? 0 : static_cast<int64_t>(coords.size()) / rank, rank};
  r->i = std::move(coords);
  out = {std::move(r)};
  return OkStatus();
}

// ---- reductions -------------------------------------------------------------------------

enum class Reduce { kSum, kMean, kMax, kProd };

OpFn MakeReduce(Reduce kind) {
  return [kind](const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) -> Status {
    USE_REQUIRE(in.size() == 2 && in[1]->dtype == DType::kInt, n, "wants input and int axes");
    const Tensor& a = *in[0];
    const int64_t rank = a.rank();
    std::vector<bool> reduced(static_cast<size_t>(rank), false);
    for (int64_t axis : IntValues(*in[1])) {
      axis = NormaliseAxis(axis, rank);
      USE_REQUIRE(axis >= 0 && axis < rank, n, "axis out of range");
      reduced[static_cast<size_t>(axis)] = true;
    }
    const bool keep = AttrBool(n.attr, "keep_dims", false);
    std::vector<int64_t> kept_shape, out_shape;  // kept_shape: reduced dims as 1
    for (int64_t k = 0; k < rank; ++k) {
      const auto uk = static_cast<size_t>(k);
      kept_shape.push_back(reduced[uk] ? 1 : a.shape[uk]);
      if (!reduced[uk] || keep) out_shape.push_back(reduced[uk] ? 1 : a.shape[uk]);
    }
    // Each input element's output position: the input index with reduced dims zeroed.
    const std::vector<int64_t> target = BroadcastIndex(kept_shape, a.shape);
    int64_t out_size = 1;
    for (int64_t d : kept_shape) out_size *= d;
    const int64_t group = out_size == 0 ? 0 : a.size() / out_size;
    auto r = NewTensor(a.dtype, out_shape);
    if (a.is_float()) {
      std::vector<double> acc(static_cast<size_t>(out_size),
                              kind == Reduce::kMax ? -std::numeric_limits<double>::infinity()
                                                   : (kind == Reduce::kProd ? 1.0 : 0.0));
      for (size_t e = 0; e < target.size(); ++e) {
        double& x = acc[static_cast<size_t>(target[e])];
        const double v = a.f[e];
        switch (kind) {
          case Reduce::kSum:
          case Reduce::kMean: x += v; break;
          case Reduce::kMax: x = std::max(x, v); break;
          case Reduce::kProd: x *= v; break;
        }
      }
      for (size_t o = 0; o < acc.size(); ++o) {
        r->f[o] = static_cast<float>(kind == Reduce::kMean && group > 0 ? acc[o] / static_cast<double>(group) : acc[o]);
      }
    } else {
      std::vector<int64_t> acc(static_cast<size_t>(out_size),
                               kind == Reduce::kMax ? std::numeric_limits<int64_t>::min()
                                                    : (kind == Reduce::kProd ? 1 : 0));
      for (size_t e = 0; e < target.size(); ++e) {
        int64_t& x = acc[static_cast<size_t>(target[e])];
        const int64_t v = a.i[e];
        switch (kind) {
          case Reduce::kSum:
          case Reduce::kMean: x += v; break;
          case Reduce::kMax: x = std::max(x, v); break;
          case Reduce::kProd: x *= v; break;
        }
      }
      for (size_t o = 0; o < acc.size(); ++o) {
        r->i[o] = static_cast<int32_t>(kind == Reduce::kMean && group > 0 ? acc[o] / group : acc[o]);
      }
    }
    out = {std::move(r)};
    return OkStatus();
  };
}

Status Softmax(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 1 && in[0]->is_float() && in[0]->rank() >= 1, n, "wants one float input");
  const Tensor& a = *in[0];
  const int64_t width = a.shape.back();
  auto r = NewTensor(DType::kFloat, a.shape);
  const int64_t rows = width == 0 ? 0 : a.size() / width;
  for (int64_t row = 0; row < rows; ++row) {
    const float* x = a.f.data() + row * width;
    float* y = r->f.data() + row * width;
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t k = 0; k < width; ++k) top = std::max(top, x[k]);
    float sum = 0;
    for (int64_t k = 0; k < width; ++k) {
      y[k] = std::exp(x[k] - top);
      sum += y[k];
    }
    for (int64_t k = 0; k < width; ++k) y[k] /= sum;
  }
  out = {std::move(r)};
  return OkStatus();
}

// ---- matrix products --------------------------------------------------------------------

// c[m×n] = a[m×k] · b[k×n]. Rows of c go in blocks that stay in cache while b, the large
// weight matrix, streams through once per block (not once per row); the inner loop is
// vectorised, with an AVX2/FMA clone picked at load time where the CPU has it.
__attribute__((target_clones("arch=haswell", "default")))
void MatMulPlain(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n) {
  constexpr int64_t kRowBlock = 32;
  std::fill(c, c + m * n, 0.0f);
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t i1 = std::min(m, i0 + kRowBlock);
    for (int64_t p = 0; p < k; ++p) {
      const float* y = b + p * n;
      for (int64_t i = i0; i < i1; ++i) {
        const float x = a[i * k + p];
        float* row = c + i * n;
        for (int64_t j = 0; j < n; ++j) row[j] += x * y[j];
      }
    }
  }
}

// c[m×n] = a[m×k] · b, where b is [k×n], or [n×k] when `b_transposed` (small: attention).
void MatMulKernel(const float* a, const float* b, float* c, int64_t m, int64_t k, int64_t n, bool b_transposed) {
  if (!b_transposed) {
    MatMulPlain(a, b, c, m, k, n);
    return;
  }
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const float* x = a + i * k;
      const float* y = b + j * k;
      float sum = 0;
      for (int64_t p = 0; p < k; ++p) sum += x[p] * y[p];
      c[i * n + j] = sum;
    }
  }
}

// A copy of the [rows × cols] matrix `a`, transposed.
std::vector<float> TransposeMatrix(const float* a, int64_t rows, int64_t cols) {
  std::vector<float> t(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = a[r * cols + c];
  }
  return t;
}

Status MatMul(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 2 && in[0]->is_float() && in[1]->is_float() && in[0]->rank() == 2 && in[1]->rank() == 2,
              n, "wants two float matrices");
  const bool ta = AttrBool(n.attr, "transpose_a", false);
  const bool tb = AttrBool(n.attr, "transpose_b", false);
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  const int64_t m = ta ? a.shape[1] : a.shape[0];
  const int64_t k = ta ? a.shape[0] : a.shape[1];
  const int64_t kb = tb ? b.shape[1] : b.shape[0];
  const int64_t cols = tb ? b.shape[0] : b.shape[1];
  USE_REQUIRE(k == kb, n, "inner dimensions " + ShapeString(a.shape) + " · " + ShapeString(b.shape));
  std::vector<float> at;
  const float* pa = a.f.data();
  if (ta) {
    at = TransposeMatrix(a.f.data(), a.shape[0], a.shape[1]);
    pa = at.data();
  }
  auto r = NewTensor(DType::kFloat, {m, cols});
  MatMulKernel(pa, b.f.data(), r->f.data(), m, k, cols, tb);
  out = {std::move(r)};
  return OkStatus();
}

Status BatchMatMul(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 2 && in[0]->is_float() && in[1]->is_float() && in[0]->rank() >= 2 &&
                  in[0]->rank() == in[1]->rank(),
              n, "wants two float tensors of one rank >= 2");
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  const bool adj_x = AttrBool(n.attr, "adj_x", false);
  const bool adj_y = AttrBool(n.attr, "adj_y", false);
  const size_t rank = a.shape.size();
  for (size_t k = 0; k + 2 < rank; ++k) USE_REQUIRE(a.shape[k] == b.shape[k], n, "batch dimensions differ");
  const int64_t ar = a.shape[rank - 2], ac = a.shape[rank - 1];
  const int64_t br = b.shape[rank - 2], bc = b.shape[rank - 1];
  const int64_t m = adj_x ? ac : ar, k = adj_x ? ar : ac;
  const int64_t kb = adj_y ? bc : br, cols = adj_y ? br : bc;
  USE_REQUIRE(k == kb, n, "inner dimensions " + ShapeString(a.shape) + " · " + ShapeString(b.shape));
  std::vector<int64_t> shape(a.shape.begin(), a.shape.end() - 2);
  int64_t batch = 1;
  for (int64_t d : shape) batch *= d;
  shape.push_back(m);
  shape.push_back(cols);
  auto r = NewTensor(DType::kFloat, shape);
  for (int64_t i = 0; i < batch; ++i) {
    const float* pa = a.f.data() + i * ar * ac;
    std::vector<float> at;
    if (adj_x) {
      at = TransposeMatrix(pa, ar, ac);
      pa = at.data();
    }
    MatMulKernel(pa, b.f.data() + i * br * bc, r->f.data() + i * m * cols, m, k, cols, adj_y);
  }
  out = {std::move(r)};
  return OkStatus();
}

Status Conv2D(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 2 && in[0]->is_float() && in[1]->is_float() && in[0]->rank() == 4 && in[1]->rank() == 4,
              n, "wants a float NHWC input and a float HWIO kernel");
  const std::string format = AttrString(n.attr, "data_format");
  USE_REQUIRE(format.empty() || format == "NHWC", n, "only NHWC is supported");
  for (int64_t v : AttrInts(n.attr, "strides")) USE_REQUIRE(v == 1, n, "only stride 1 is supported");
  for (int64_t v : AttrInts(n.attr, "dilations")) USE_REQUIRE(v == 1, n, "only dilation 1 is supported");
  const Tensor& x = *in[0];
  const Tensor& w = *in[1];
  USE_REQUIRE(w.shape[0] == 1 && w.shape[1] == 1, n, "only 1x1 kernels are supported");
  USE_REQUIRE(w.shape[2] == x.shape[3], n, "input channels differ from the kernel's");
  const int64_t rows = x.shape[0] * x.shape[1] * x.shape[2];
  auto r = NewTensor(DType::kFloat, {x.shape[0], x.shape[1], x.shape[2], w.shape[3]});
  MatMulKernel(x.f.data(), w.f.data(), r->f.data(), rows, w.shape[2], w.shape[3], false);
  out = {std::move(r)};
  return OkStatus();
}

Status BiasAdd(const Node& n, std::span<const TensorPtr> in, std::vector<TensorPtr>& out) {
  USE_REQUIRE(in.size() == 2 && in[0]->is_float() && in[1]->is_float() && in[1]->rank() == 1 && in[0]->rank() >= 1,
              n, "wants a float tensor and a float vector");
  const std::string format = AttrString(n.attr, "data_format");
  USE_REQUIRE(format.empty() || format == "NHWC", n, "only NHWC is supported");
  const int64_t width = in[1]->shape[0];
  USE_REQUIRE(in[0]->shape.back() == width, n, "bias length differs from the last dimension");
  auto r = std::make_shared<Tensor>(*in[0]);
  const float* b = in[1]->f.data();
  for (size_t e = 0; e < r->f.size(); ++e) r->f[e] += b[static_cast<int64_t>(e) % width];
  out = {std::move(r)};
  return OkStatus();
}

const std::unordered_map<std::string, OpFn>& Ops() {
  static const auto* ops = new std::unordered_map<std::string, OpFn>{
      {"Add", MakeArith(Arith::kAdd)},
      {"AddV2", MakeArith(Arith::kAdd)},
      {"Sub", MakeArith(Arith::kSub)},
      {"Mul", MakeArith(Arith::kMul)},
      {"RealDiv", MakeArith(Arith::kDiv)},
      {"Maximum", MakeArith(Arith::kMax)},
      {"Less", MakeCompare(true)},
      {"Greater", MakeCompare(false)},
      {"LogicalNot", LogicalNot},
      {"Cos", MakeUnaryFloat([](float x) { return std::cos(x); })},
      {"Sin", MakeUnaryFloat([](float x) { return std::sin(x); })},
      {"Relu", MakeUnaryFloat([](float x) { return std::max(x, 0.0f); })},
      {"Rsqrt", MakeUnaryFloat([](float x) { return 1.0f / std::sqrt(x); })},
      {"Square", MakeUnaryFloat([](float x) { return x * x; })},
      {"Tanh", MakeUnaryFloat([](float x) { return std::tanh(x); })},
      {"Cast", Cast},
      {"Reshape", Reshape},
      {"Shape", ShapeOp},
      {"ExpandDims", ExpandDims},
      {"Squeeze", Squeeze},
      {"StridedSlice", StridedSlice},
      {"Slice", Slice},
      {"Transpose", Transpose},
      {"ConcatV2", ConcatV2},
      {"Pack", Pack},
      {"SplitV", SplitV},
      {"Range", Range},
      {"GatherV2", GatherV2},
      {"GatherNd", GatherNd},
      {"ScatterNd", ScatterNd},
      {"SparseToDense", SparseToDense},
      {"Where", Where},
      {"Sum", MakeReduce(Reduce::kSum)},
      {"Mean", MakeReduce(Reduce::kMean)},
      {"Max", MakeReduce(Reduce::kMax)},
      {"Prod", MakeReduce(Reduce::kProd)},
      {"Softmax", Softmax},
      {"MatMul", MatMul},
      {"BatchMatMul", BatchMatMul},
      {"BatchMatMulV2", BatchMatMul},
      {"Conv2D", Conv2D},
      {"BiasAdd", BiasAdd},
  };
  return *ops;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("USE model: cannot open " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return DataLossError("USE model: cannot read " + path);
  return std::move(buffer).str();
}

}  // namespace

// The compiled graph: nodes in an order that runs each after its inputs.
class UseGraph {
 public:
  std::vector<Node> nodes;
  std::vector<size_t> order;  // nodes to run, inputs first (Const and Placeholder excluded)
  // release[s]: nodes whose outputs nothing after order[s] reads (freed then, which keeps
  // a large batch's peak memory to the few tensors alive at once).
  std::vector<std::vector<size_t>> release;
  size_t indices = 0;         // the placeholders
  size_t values = 0;
  size_t output = 0;
  size_t weight_bytes = 0;
  int64_t embedding_rows = 0;  // rows of the token embedding table

  static Result<std::unique_ptr<UseGraph>> Load(const std::string& dir);
  Result<TensorPtr> Run(TensorPtr indices_value, TensorPtr values_value) const;
};

Result<std::unique_ptr<UseGraph>> UseGraph::Load(const std::string& dir) {
  ENGRAM_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/model.json"));
  Json model = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (model.is_discarded() || !model.is_object()) return DataLossError("USE model: " + dir + "/model.json is not JSON");
  auto topology = model.find("modelTopology");
  auto manifest = model.find("weightsManifest");
  if (topology == model.end() || !topology->is_object() || !topology->contains("node") ||
      !(*topology)["node"].is_array() || manifest == model.end() || !manifest->is_array()) {
    return DataLossError("USE model: model.json lacks modelTopology.node or weightsManifest");
  }

  // Weights: each manifest group's shards, concatenated, hold its weights in order.
  std::unordered_map<std::string, TensorPtr> weights;
  size_t weight_bytes = 0;
  for (const Json& group : *manifest) {
    if (!group.is_object() || !group.contains("paths") || !group["paths"].is_array() || !group.contains("weights") ||
        !group["weights"].is_array()) {
      return DataLossError("USE model: a weightsManifest group lacks paths or weights");
    }
    std::string bytes;
    for (const Json& path : group["paths"]) {
      if (!path.is_string()) return DataLossError("USE model: a shard path is not a string");
      ENGRAM_ASSIGN_OR_RETURN(std::string shard, ReadFile(dir + "/" + path.get<std::string>()));
      bytes += shard;
    }
    size_t offset = 0;
    for (const Json& w : group["weights"]) {
      if (!w.is_object() || !w.contains("name") || !w["name"].is_string() || !w.contains("shape") ||
          !w["shape"].is_array() || !w.contains("dtype") || !w["dtype"].is_string()) {
        return DataLossError("USE model: a weight entry lacks name, shape or dtype");
      }
      const std::string name = w["name"].get<std::string>();
      if (w.contains("quantization")) return DataLossError("USE model: weight " + name + " is quantized (not supported)");
      auto t = std::make_shared<Tensor>();
      for (const Json& d : w["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) return DataLossError("USE model: weight " + name + " has a bad shape");
        t->shape.push_back(d.get<int64_t>());
      }
      const std::string dtype = w["dtype"].get<std::string>();
      const auto count = static_cast<size_t>(t->size());
      size_t size = 0;
      if (dtype == "float32") {
        t->dtype = DType::kFloat;
        size = count * 4;
      } else if (dtype == "int32") {
        t->dtype = DType::kInt;
        size = count * 4;
      } else if (dtype == "bool") {
        t->dtype = DType::kBool;
        size = count;
      } else {
        return DataLossError("USE model: weight " + name + " has unsupported dtype " + dtype);
      }
      if (offset + size > bytes.size()) {
        return DataLossError("USE model: the weight shards hold " + std::to_string(bytes.size()) +
                             " bytes but the manifest needs more (at " + name + "); a shard is truncated");
      }
      if (t->dtype == DType::kFloat) {
        t->f.resize(count);
        std::memcpy(t->f.data(), bytes.data() + offset, size);
      } else if (t->dtype == DType::kInt) {
        t->i.resize(count);
        std::memcpy(t->i.data(), bytes.data() + offset, size);
      } else {
        t->i.resize(count);
        for (size_t e = 0; e < count; ++e) t->i[e] = bytes[offset + e] != 0 ? 1 : 0;
      }
      offset += size;
      weight_bytes += size;
      weights[name] = std::move(t);
    }
    if (offset != bytes.size()) {
      return DataLossError("USE model: the weight shards hold " + std::to_string(bytes.size()) +
                           " bytes, the manifest describes " + std::to_string(offset));
    }
  }

  auto g = std::make_unique<UseGraph>();
  g->weight_bytes = weight_bytes;
  const Json& node_list = (*topology)["node"];
  std::unordered_map<std::string, size_t> by_name;
  for (const Json& j : node_list) {
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("op") || !j["op"].is_string()) {
      return DataLossError("USE model: a graph node lacks name or op");
    }
    Node node;
    node.name = j["name"].get<std::string>();
    node.op = j["op"].get<std::string>();
    if (j.contains("attr") && j["attr"].is_object()) node.attr = j["attr"];
    by_name[node.name] = g->nodes.size();
    g->nodes.push_back(std::move(node));
  }
  std::vector<int> consumers(g->nodes.size(), 0);
  for (size_t k = 0; k < g->nodes.size(); ++k) {
    Node& node = g->nodes[k];
    const Json& j = node_list[k];
    if (j.contains("input") && j["input"].is_array()) {
      for (const Json& input : j["input"]) {
        if (!input.is_string()) return DataLossError("USE model: node " + node.name + " has a bad input");
        std::string name = input.get<std::string>();
        if (!name.empty() && name[0] == '^') continue;  // a control dependency: order only
        size_t output = 0;
        const size_t colon = name.rfind(':');
        if (colon != std::string::npos && colon + 1 < name.size() &&
            name.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
          output = std::stoul(name.substr(colon + 1));
          name.resize(colon);
        }
        auto it = by_name.find(name);
        if (it == by_name.end()) return DataLossError("USE model: node " + node.name + " reads unknown node " + name);
        node.inputs.emplace_back(it->second, output);
        ++consumers[it->second];
      }
    }
    if (node.op == "Const") {
      auto w = weights.find(node.name);
      if (w == weights.end()) return DataLossError("USE model: constant " + node.name + " has no weights in the shards");
      node.value = w->second;
    } else if (node.op != "Placeholder") {
      auto op = Ops().find(node.op);
      if (op == Ops().end()) return DataLossError("USE model: operation " + node.op + " (node " + node.name + ") is not implemented");
      node.fn = op->second;
    }
  }
  auto placeholder = [&](const char* name) -> Result<size_t> {
    auto it = by_name.find(name);
    if (it == by_name.end() || g->nodes[it->second].op != "Placeholder") {
      return DataLossError(std::string("USE model: no placeholder named ") + name);
    }
    return it->second;
  };
  ENGRAM_ASSIGN_OR_RETURN(g->indices, placeholder("indices"));
  ENGRAM_ASSIGN_OR_RETURN(g->values, placeholder("values"));
  std::vector<size_t> sinks;
  for (size_t k = 0; k < g->nodes.size(); ++k) {
    if (consumers[k] == 0 && g->nodes[k].op != "Const" && g->nodes[k].op != "Placeholder") sinks.push_back(k);
  }
  if (sinks.size() != 1) return DataLossError("USE model: the graph has " + std::to_string(sinks.size()) + " outputs, want 1");
  g->output = sinks[0];
  auto table = weights.find("module/Embeddings_en");
  if (table == weights.end() || table->second->rank() != 2) return DataLossError("USE model: no token embedding table");
  g->embedding_rows = table->second->shape[0];

  // Inputs first: depth-first from the output (iterative; 0 new, 1 open, 2 done).
  std::vector<int> state(g->nodes.size(), 0);
  std::vector<std::pair<size_t, size_t>> stack = {{g->output, 0}};
  state[g->output] = 1;
  while (!stack.empty()) {
    auto& [k, next] = stack.back();
    const Node& node = g->nodes[k];
    if (next < node.inputs.size()) {
      const size_t input = node.inputs[next++].first;
      if (state[input] == 1) return DataLossError("USE model: the graph has a cycle at " + g->nodes[input].name);
      if (state[input] == 0) {
        state[input] = 1;
        stack.emplace_back(input, 0);
      }
      continue;
    }
    state[k] = 2;
    if (node.op != "Const" && node.op != "Placeholder") g->order.push_back(k);
    stack.pop_back();
  }
  std::vector<size_t> last_read(g->nodes.size(), SIZE_MAX);
  for (size_t step = 0; step < g->order.size(); ++step) {
    for (const auto& [from, output] : g->nodes[g->order[step]].inputs) last_read[from] = step;
  }
  g->release.resize(g->order.size());
  for (size_t k = 0; k < g->nodes.size(); ++k) {
    if (last_read[k] != SIZE_MAX && k != g->output && g->nodes[k].op != "Const") g->release[last_read[k]].push_back(k);
  }
  return g;
}

Result<TensorPtr> UseGraph::Run(TensorPtr indices_value, TensorPtr values_value) const {
  std::vector<std::vector<TensorPtr>> results(nodes.size());
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (nodes[k].op == "Const") results[k] = {nodes[k].value};
  }
  results[indices] = {std::move(indices_value)};
  results[values] = {std::move(values_value)};
  std::vector<TensorPtr> in;
  for (size_t step = 0; step < order.size(); ++step) {
    const size_t k = order[step];
    const Node& node = nodes[k];
    in.clear();
    for (const auto& [from, output] : node.inputs) {
      if (output >= results[from].size() || !results[from][output]) {
        return InternalError("USE graph: node " + node.name + " reads a missing output of " + nodes[from].name);
      }
      in.push_back(results[from][output]);
    }
    ENGRAM_RETURN_IF_ERROR(node.fn(node, in, results[k]));
    in.clear();
    for (size_t done : release[step]) results[done].clear();
  }
  if (results[output].empty()) return InternalError("USE graph: no output");
  return results[output][0];
}

UseModel::~UseModel() = default;

size_t UseModel::weight_bytes() const { return graph_->weight_bytes; }

Result<std::unique_ptr<UseModel>> UseModel::Open(const std::string& dir) {
  std::unique_ptr<UseModel> model(new UseModel());
  if (std::ifstream probe(dir + "/model.json"); !probe) {
    return NotFoundError("USE model: no model.json in " + dir +
                         " (scripts/install-deps installs the model under models/; or set embedding.model_dir)");
  }
  ENGRAM_ASSIGN_OR_RETURN(model->graph_, UseGraph::Load(dir));
  ENGRAM_ASSIGN_OR_RETURN(std::string vocab, ReadFile(dir + "/vocab.json"));
  ENGRAM_ASSIGN_OR_RETURN(model->tokenizer_, UseTokenizer::FromJson(vocab));
  model->vocabulary_rows_ = static_cast<int32_t>(model->graph_->embedding_rows);
  if (static_cast<int64_t>(model->tokenizer_->vocabulary_size()) > model->graph_->embedding_rows) {
    return DataLossError("USE model: the vocabulary has more pieces than the embedding table has rows");
  }
  // One probe sentence: proves the graph runs here and learns the output width.
  ENGRAM_ASSIGN_OR_RETURN(auto probe, model->Run({model->tokenizer_->Encode("hello world")}));
  model->dimension_ = static_cast<int>(probe[0].size());
  if (model->dimension_ <= 0) return DataLossError("USE model: the graph's output is empty");
  return model;
}

Result<std::vector<std::vector<float>>> UseModel::Run(const std::vector<std::vector<int32_t>>& ids) const {
  if (ids.empty()) return std::vector<std::vector<float>>{};
  size_t total = 0;
  for (const auto& list : ids) {
    if (list.empty()) return InvalidArgumentError("USE model: an empty token list");
    for (int32_t id : list) {
      if (id < 0 || id >= vocabulary_rows_) return InvalidArgumentError("USE model: token id " + std::to_string(id) + " out of range");
    }
    total += list.size();
  }
  auto indices = NewTensor(DType::kInt, {static_cast<int64_t>(total), 2});
  auto values = NewTensor(DType::kInt, {static_cast<int64_t>(total)});
  size_t at = 0;
  for (size_t row = 0; row < ids.size(); ++row) {
    for (size_t pos = 0; pos < ids[row].size(); ++pos, ++at) {
      indices->i[2 * at] = static_cast<int32_t>(row);
      indices->i[2 * at + 1] = static_cast<int32_t>(pos);
      values->i[at] = ids[row][pos];
    }
  }
  ENGRAM_ASSIGN_OR_RETURN(TensorPtr out, graph_->Run(std::move(indices), std::move(values)));
  if (!out->is_float() || out->rank() != 2 || out->shape[0] != static_cast<int64_t>(ids.size())) {
    return InternalError("USE model: the graph returned " + ShapeString(out->shape) + " for " +
                         std::to_string(ids.size()) + " texts");
  }
  const int64_t width = out->shape[1];
  std::vector<std::vector<float>> vectors(ids.size());
  for (size_t row = 0; row < ids.size(); ++row) {
    vectors[row].assign(out->f.begin() + static_cast<int64_t>(row) * width,
                        out->f.begin() + static_cast<int64_t>(row + 1) * width);
  }
  return vectors;
}

}  // namespace engram::embedding
