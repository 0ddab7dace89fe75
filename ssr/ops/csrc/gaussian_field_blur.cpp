// Fused Gaussian kernel field + spatially variant blur + s-fold subsampling on the CPU (float32).
//
// The native half of ssr/ops/gaussian_field_blur.py, which prepares the inputs (the padding as index maps, the
// per-pixel precision, the stabiliser, the tap monomials) and documents the maths. Per LR pixel (b, i, j)
// and tap t = a*K + bb this computes, as ssr.ops.kernel_field.kernel_field_from_params does,
//
//     l_t  = nst + m0[t] * A + m1[t] * B + m2[t] * C      (nst = -stabiliser, (A, B, C) the precision)
//     l_t -= max_t l_t                                      only where stabiliser < -80 ("narrow" pixels)
//     w_t  = exp(max(l_t, -80)),   field[b, t, i, j] = w_t / sum_t w_t
//
// and, as ssr.ops.sv_blur.sv_blur_downsample does for that field,
//
//     lr[b, c, i, j] = sum_t field[b, t, i, j] * HRpad[b, c, s*i + a, s*j + bb]
//                    = (sum_t w_t * phase[b, c, a % s, bb % s][i + a / s, j + bb / s]) / sum_t w_t.
//
// Pixels are processed as segments of kLanes = 16 consecutive LR pixels of one row (one AVX-512 register): every
// tap's weights of a segment are one contiguous 64-byte store into the tap-major field, and every HR read is a
// contiguous load from one phase. A segment's weights wait in a scratch buffer (K*K x kLanes floats, 28 KB for
// K = 21, in L1) until their sum is known; they are then normalised and stored, bypassing the caches, while the
// next segment is computed (run_segments).
//
// Vectors are GCC vector extensions. ssr.ops.native builds this file only for CPUs with AVX-512 (torch's CPU
// capability): there, gaussian_field_blur_downsample of 11 x 3 x 256^2 with K = 21, x4 into a new field takes
// ~29 ms on one thread of a 2-core x86 VM against ~60 for the torch path; built for AVX2 (the same source, each
// vector split in two) it measured slower than the torch path (81 ms).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr int kLanes = 16;
typedef float vf __attribute__((vector_size(kLanes * sizeof(float)), aligned(4)));  // unaligned loads / stores ok
typedef int32_t vi __attribute__((vector_size(kLanes * sizeof(int32_t)), aligned(4)));

inline vf splat(float x) { return x - vf{}; }  // x - 0.0f == x for every x (x + 0.0f is not, for -0.0f)
inline vf load(const float* p) { return *reinterpret_cast<const vf*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vf*>(p) = v; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }

// A store that bypasses the caches where the target is a 64-byte aligned cache line (every full segment of a field
// whose rows are multiples of 16 floats): the field is written once and not read again here. Plain stores first read
// each line, and the taps' lines, h*w floats apart, fight over the same cache sets: 77 ms against 9 for the build of
// 11 x 441 x 64^2 on one thread. Callers end with stream_fence().
inline void store_stream(float* p, vf v) {
#if defined(__AVX512F__)
  if ((reinterpret_cast<uintptr_t>(p) & 63) == 0) return _mm512_stream_ps(p, reinterpret_cast<__m512&>(v));
#endif
  store(p, v);
}

inline void stream_fence() {
#if defined(__AVX512F__)
  _mm_sfence();
#endif
}

// exp(x) for x in [-80, 88] (the build's log-weights lie in [-80, 80]): x = n ln2 + r with |r| <= ln2 / 2, exp(r) by
// its degree-7 Taylor polynomial (truncation error < 1e-8 relative), 2^n from the exponent bits. Within 1 ulp of
// exp (0.93 ulp at most over [-80, 10] against a double-precision exp); no denormals occur (exp(-80) ~ 1.8e-35 is a
// normal float).
inline vf vexp(vf x) {
  const vf shifter = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds x * log2(e) to an integer in the low bits
  vf t = x * splat(1.44269504088896341f) + shifter;
  vf n = t - shifter;
  vf r = x - n * splat(0.693359375f);  // ln 2 = 0.693359375 - 2.12194440e-4, the high part exact in n * hi
  r = r + n * splat(2.12194440e-4f);
  vf p = splat(1.0f / 5040.0f);
  p = p * r + splat(1.0f / 720.0f);
  p = p * r + splat(1.0f / 120.0f);
  p = p * r + splat(1.0f / 24.0f);
  p = p * r + splat(1.0f / 6.0f);
  p = p * r + splat(0.5f);
  p = p * r + splat(1.0f);
  p = p * r + splat(1.0f);
  vi bits = reinterpret_cast<vi&>(t) - 0x4B400000;  // n, from t's mantissa
  vi scale_bits = (bits + 127) << 23;
  return p * reinterpret_cast<vf&>(scale_bits);
}

// Maps the pages of a fresh output before the scattered stores of the build: on a new field the kernel maps and
// zeroes every page at its first write, and one madvise(MADV_POPULATE_WRITE) call for the whole range costs far less
// than ~2,000 page faults taken in the tap-major order of the stores (a new 11 x 441 x 64^2 field, one thread of a
// 2-core x86 VM: the build took 30 ms with the call, 40 without). Pages already mapped are left as they are;
// without the call (not Linux, or a kernel older than 5.14) nothing happens.
void prefault(float* data, int64_t n) {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  const uintptr_t page = 4096;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(data + n) & ~(page - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);  // errors: no-op
#else
  (void)data;
  (void)n;
#endif
}

struct Problem {
  const float* hr;          // (B, C, H, W)
  const int64_t* row_index; // (Hp,): the HR row of each padded row, -1 for a row of zeros (padding 'zeros')
  const int32_t* columns;   // (s, pw): the HR column of padded column s*x + q at [q, x], -1 for zeros
  const float* prec;        // (B, 3, h, w)
  const float* neg_stab;    // (B, h, w)
  const float* monomials;   // (3, K*K)
  float* field;             // (B, K*K, h, w)
  float* lr;                // (B, C, h, w)
  int64_t channels, h, w, H, W, Hp, pw;
  int k, s;
};

// Loads and stores of a segment's lanes: all kLanes of them, or the first n (rows narrower than kLanes), through a
// zero-padded buffer.
template <bool kFull>
struct Lanes {
  int n;
  vf get(const float* p) const {
    if (kFull) return load(p);
    float buf[kLanes] = {};
    std::memcpy(buf, p, sizeof(float) * n);
    return load(buf);
  }
  void put(float* p, vf v) const {
    if (kFull) return store(p, v);
    float buf[kLanes];
    store(buf, v);
    std::memcpy(p, buf, sizeof(float) * n);
  }
};

// Where the segment's inputs and outputs are.
struct Segment {
  const float* prec;      // lane 0 of (A, B, C), planes hw apart
  const float* neg_stab;  // lane 0
  const float* img;       // the phases of a block of rows of image b: (C, s, s, rows, pw)
  int64_t rows, i, j0;    // phase rows in the block, the LR row's first phase row in it, first LR column
  float* lr;              // lane 0 of channel 0, channels hw apart
  float* field;           // lane 0 of tap 0, taps hw apart
};

// A segment whose weights wait in scratch for their normalised store into the field (see run_segments).
struct Pending {
  const float* scratch;
  vf sum;
  float* field;
};

// Stores tap t of a pending segment: its weight over the segment's sum, straight to memory.
inline void store_pending(const Pending* pending, int64_t t, int64_t hw) {
  if (pending) store_stream(pending->field + t * hw, load(pending->scratch + t * kLanes) / pending->sum);
}

// Pass 1: every tap's weight into scratch (tap t at scratch + t * kLanes), the weights' sum, and the blur of
// channels 0 .. kC - 1 (kC <= 4, in registers) with the unnormalised weights; returns the sum. Tap t of `pending`
// (a full segment, or nullptr) is stored alongside tap t of this one.
//
// Sums run in two levels, over each kernel row and then over the rows, which keeps their rounding error near that of
// torch's reductions (one running sum of the K*K terms doubles the difference to the torch path).
template <bool kFull, int kC>
vf weights_and_blur(const Problem& P, const Segment& S, Lanes<kFull> io, float* scratch, const Pending* pending) {
  const int64_t hw = P.h * P.w, taps = int64_t(P.k) * P.k, plane = S.rows * P.pw;
  const int64_t channel_stride = int64_t(P.s) * P.s * plane;
  const int k = P.k, s = P.s;
  const vf A = io.get(S.prec), B = io.get(S.prec + hw), C = io.get(S.prec + 2 * hw);
  const vf nst = io.get(S.neg_stab);
  const float* m0 = P.monomials;
  const float* m1 = m0 + taps;
  const float* m2 = m1 + taps;
  auto logit = [&](int64_t t) { return nst + splat(m0[t]) * A + splat(m1[t]) * B + splat(m2[t]) * C; };

  // very narrow kernels (stabiliser < -80): those lanes are shifted by their exact maximum, as in the torch build;
  // the others by 0, which leaves them unchanged
  const vi narrow = nst > splat(80.0f);
  bool any_narrow = false;
  for (int l = 0; l < (kFull ? kLanes : io.n); ++l) any_narrow |= narrow[l] != 0;
  vf shift = splat(0.0f);
  if (any_narrow) {
    vf mx = logit(0);
    for (int64_t t = 1; t < taps; ++t) mx = vmax(mx, logit(t));
    shift = narrow ? mx : shift;
  }

  vf acc[kC], sum = splat(0.0f);
  for (int c = 0; c < kC; ++c) acc[c] = splat(0.0f);
  const vf floor80 = splat(-80.0f);
  for (int a = 0; a < k; ++a) {
    const float* row = S.img + (int64_t(a % s) * s * S.rows + S.i + a / s) * P.pw + S.j0;  // phase (a % s, 0)
    vf row_acc[kC], row_sum = splat(0.0f);
    for (int c = 0; c < kC; ++c) row_acc[c] = splat(0.0f);
    // tap column bb reads phase column q = bb % s at offset bb / s (kept as counters: no division per tap)
    for (int bb = 0, q = 0, shift_x = 0; bb < k; ++bb) {
      const int64_t t = int64_t(a) * k + bb;
      const vf e = vexp(vmax(logit(t) - shift, floor80));
      row_sum = row_sum + e;
      store(scratch + t * kLanes, e);
      const float* src = row + q * plane + shift_x;
      for (int c = 0; c < kC; ++c) row_acc[c] = row_acc[c] + e * io.get(src + c * channel_stride);
      store_pending(pending, t, hw);
      if (++q == s) q = 0, ++shift_x;
    }
    sum = sum + row_sum;
    for (int c = 0; c < kC; ++c) acc[c] = acc[c] + row_acc[c];
  }
  for (int c = 0; c < kC; ++c) io.put(S.lr + c * hw, acc[c] / sum);
  return sum;
}

// The blur of channels c0 .. c0 + kC - 1 with the weights pass 1 left in scratch.
template <bool kFull, int kC>
void blur_from_scratch(const Problem& P, const Segment& S, Lanes<kFull> io, const float* scratch, int c0, vf sum) {
  const int64_t hw = P.h * P.w, plane = S.rows * P.pw;
  const int64_t channel_stride = int64_t(P.s) * P.s * plane;
  const int k = P.k, s = P.s;
  vf acc[kC];
  for (int c = 0; c < kC; ++c) acc[c] = splat(0.0f);
  for (int a = 0; a < k; ++a) {
    const float* row = S.img + c0 * channel_stride + (int64_t(a % s) * s * S.rows + S.i + a / s) * P.pw + S.j0;
    vf row_acc[kC];
    for (int c = 0; c < kC; ++c) row_acc[c] = splat(0.0f);
    for (int bb = 0, q = 0, shift_x = 0; bb < k; ++bb) {
      const vf e = load(scratch + (int64_t(a) * k + bb) * kLanes);
      const float* src = row + q * plane + shift_x;
      for (int c = 0; c < kC; ++c) row_acc[c] = row_acc[c] + e * io.get(src + c * channel_stride);
      if (++q == s) q = 0, ++shift_x;
    }
    for (int c = 0; c < kC; ++c) acc[c] = acc[c] + row_acc[c];
  }
  for (int c = 0; c < kC; ++c) io.put(S.lr + (c0 + c) * hw, acc[c] / sum);
}

// Weights, sum and the blur of every channel of one segment; returns the sum (the field is not written).
template <bool kFull>
vf weights_and_blur_all(const Problem& P, const Segment& S, Lanes<kFull> io, float* scratch,
                        const Pending* pending) {
  const int channels = int(P.channels);
  vf sum;
  switch (channels < 4 ? channels : 4) {
    case 1: sum = weights_and_blur<kFull, 1>(P, S, io, scratch, pending); break;
    case 2: sum = weights_and_blur<kFull, 2>(P, S, io, scratch, pending); break;
    case 3: sum = weights_and_blur<kFull, 3>(P, S, io, scratch, pending); break;
    default: sum = weights_and_blur<kFull, 4>(P, S, io, scratch, pending); break;
  }
  for (int c0 = 4; c0 < channels; c0 += 4) {  // C > 4: one more pass over the weights per block of 4 channels
    switch (channels - c0 < 4 ? channels - c0 : 4) {
      case 1: blur_from_scratch<kFull, 1>(P, S, io, scratch, c0, sum); break;
      case 2: blur_from_scratch<kFull, 2>(P, S, io, scratch, c0, sum); break;
      case 3: blur_from_scratch<kFull, 3>(P, S, io, scratch, c0, sum); break;
      default: blur_from_scratch<kFull, 4>(P, S, io, scratch, c0, sum); break;
    }
  }
  return sum;
}

// The padded HR rows that LR rows i0 .. i0 + n - 1 of image b read, split into their s*s phases: out holds
// (C, s, s, rows, pw) with [c, p, q, y, x] = HRpad[b, c, s*(i0 + y) + p, s*x + q], rows = n + (k - 1) / s. The
// padding is read through the index maps (Python computes them as ssr.ops.sv_blur.pad_hr pads); the block, ~0.5 MB
// for 32 rows of 3 x 256^2, is rebuilt per block of rows in a buffer reused by the thread, so it is read from L2.
int64_t build_phases(const Problem& P, int64_t b, int64_t i0, int64_t n, std::vector<float>& out) {
  const int s = P.s;
  const int64_t rows = n + (P.k - 1) / s;
  out.resize(size_t(P.channels * s * s * rows * P.pw));
  for (int64_t c = 0; c < P.channels; ++c) {
    const float* img = P.hr + (b * P.channels + c) * P.H * P.W;
    for (int p = 0; p < s; ++p) {
      for (int64_t y = 0; y < rows; ++y) {
        const int64_t Y = s * (i0 + y) + p;
        const int64_t src = Y < P.Hp ? P.row_index[Y] : -1;
        for (int q = 0; q < s; ++q) {
          float* dst = out.data() + (((c * s + p) * s + q) * rows + y) * P.pw;
          const int32_t* cols = P.columns + q * P.pw;
          if (src < 0) {
            std::memset(dst, 0, sizeof(float) * P.pw);
            continue;
          }
          const float* row = img + src * P.W;
          for (int64_t x = 0; x < P.pw; ++x) dst[x] = cols[x] >= 0 ? row[cols[x]] : 0.0f;
        }
      }
    }
  }
  return rows;
}

constexpr int64_t kBlockRows = 32;  // LR rows per block of phases: (k - 1) / s extra rows each, ~16% for k = 21, x4

Segment locate(const Problem& P, int64_t b, int64_t i, int64_t j0, const float* phases, int64_t rows,
               int64_t i0) {
  const int64_t hw = P.h * P.w, pix = i * P.w + j0, taps = int64_t(P.k) * P.k;
  return Segment{P.prec + b * 3 * hw + pix, P.neg_stab + b * hw + pix, phases, rows, i - i0, j0,
                 P.lr + b * P.channels * hw + pix, P.field + b * taps * hw + pix};
}

// LR rows r0 .. r1 - 1 (row r = image r / h, row r % h), in blocks of at most kBlockRows rows of one image. For
// rows of at least kLanes pixels the segments are software-pipelined: a segment's normalised weights go to the field
// while the next segment's weights are computed (its taps interleaved with the other's stores), so that the writes,
// which are bound by memory bandwidth, overlap the arithmetic instead of following it; the weights alternate between
// two scratch buffers. The last segment of a row overlaps its predecessor instead of running short (the same values,
// recomputed).
void run_segments(const Problem& P, int64_t r0, int64_t r1) {
  const int64_t taps = int64_t(P.k) * P.k, hw = P.h * P.w;
  std::vector<float> buffer(2 * taps * kLanes), phases;
  Pending pending{};
  bool has_pending = false;
  int parity = 0;
  for (int64_t r = r0; r < r1;) {
    const int64_t b = r / P.h, i0 = r % P.h;
    const int64_t n = std::min({kBlockRows, P.h - i0, r1 - r});
    const int64_t rows = build_phases(P, b, i0, n, phases);
    for (int64_t i = i0; i < i0 + n; ++i) {
      if (P.w < kLanes) {
        const Segment S = locate(P, b, i, 0, phases.data(), rows, i0);
        const Lanes<false> io{int(P.w)};
        const vf sum = weights_and_blur_all(P, S, io, buffer.data(), nullptr);
        for (int64_t t = 0; t < taps; ++t) io.put(S.field + t * hw, load(buffer.data() + t * kLanes) / sum);
        continue;
      }
      for (int64_t j = 0; j < P.w; j += kLanes) {
        const Segment S = locate(P, b, i, j + kLanes <= P.w ? j : P.w - kLanes, phases.data(), rows, i0);
        float* scratch = buffer.data() + parity * taps * kLanes;
        const vf sum = weights_and_blur_all(P, S, Lanes<true>{kLanes}, scratch, has_pending ? &pending : nullptr);
        pending = Pending{scratch, sum, S.field};
        has_pending = true;
        parity ^= 1;
      }
    }
    r += n;
  }
  if (has_pending) {
    for (int64_t t = 0; t < taps; ++t) store_pending(&pending, t, hw);
  }
}

void gaussian_field_blur(const at::Tensor& hr, const at::Tensor& row_index, const at::Tensor& col_index,
                         const at::Tensor& prec, const at::Tensor& neg_stab, const at::Tensor& monomials,
                         const at::Tensor& field, const at::Tensor& lr, int64_t kernel_size, int64_t scale) {
  for (const at::Tensor* x : {&hr, &prec, &neg_stab, &monomials, &field, &lr}) {
    TORCH_CHECK(x->device().is_cpu() && x->scalar_type() == at::kFloat && x->is_contiguous(),
                "gaussian_field_blur: hr, prec, neg_stab, monomials, field and lr must be contiguous CPU float32");
  }
  for (const at::Tensor* x : {&row_index, &col_index}) {
    TORCH_CHECK(x->device().is_cpu() && x->scalar_type() == at::kLong && x->is_contiguous() && x->dim() == 1,
                "gaussian_field_blur: row_index and col_index must be contiguous 1-d CPU int64");
  }
  TORCH_CHECK(hr.dim() == 4 && prec.dim() == 4 && neg_stab.dim() == 3 && field.dim() == 4 && lr.dim() == 4,
              "gaussian_field_blur: bad ranks");
  const int64_t batch = lr.size(0), channels = lr.size(1), h = lr.size(2), w = lr.size(3);
  const int64_t k = kernel_size, s = scale, taps = k * k;
  TORCH_CHECK(k >= 3 && k % 2 == 1 && s >= 1, "gaussian_field_blur: bad kernel_size / scale");
  const int64_t H = hr.size(2), W = hr.size(3), Hp = row_index.numel(), Wp = col_index.numel();
  TORCH_CHECK(hr.size(0) == batch && hr.size(1) == channels && H == s * h && W == s * w,
              "gaussian_field_blur: hr does not match lr");
  TORCH_CHECK(Hp == H + k - 1 && Wp == W + k - 1, "gaussian_field_blur: index maps must cover H, W + k - 1");
  const int64_t* rows = row_index.data_ptr<int64_t>();
  const int64_t* cols = col_index.data_ptr<int64_t>();
  for (int64_t y = 0; y < Hp; ++y) TORCH_CHECK(rows[y] >= -1 && rows[y] < H, "gaussian_field_blur: bad row_index");
  for (int64_t x = 0; x < Wp; ++x) TORCH_CHECK(cols[x] >= -1 && cols[x] < W, "gaussian_field_blur: bad col_index");
  TORCH_CHECK(prec.size(0) == batch && prec.size(1) == 3 && prec.size(2) == h && prec.size(3) == w,
              "gaussian_field_blur: prec does not match lr");
  TORCH_CHECK(neg_stab.size(0) == batch && neg_stab.size(1) == h && neg_stab.size(2) == w,
              "gaussian_field_blur: neg_stab does not match lr");
  TORCH_CHECK(monomials.numel() == 3 * taps, "gaussian_field_blur: monomials must hold 3 * K * K values");
  TORCH_CHECK(field.size(0) == batch && field.size(1) == taps && field.size(2) == h && field.size(3) == w,
              "gaussian_field_blur: field does not match lr");
  // phase columns: pw = ceil(Wp / s) >= w + (k - 1) / s, the largest column a segment reads, plus one
  const int64_t pw = (Wp + s - 1) / s;
  std::vector<int32_t> columns(size_t(s * pw));
  for (int64_t q = 0; q < s; ++q) {
    for (int64_t x = 0; x < pw; ++x) columns[q * pw + x] = s * x + q < Wp ? int32_t(cols[s * x + q]) : -1;
  }
  Problem P{hr.data_ptr<float>(), rows, columns.data(), prec.data_ptr<float>(), neg_stab.data_ptr<float>(),
            monomials.data_ptr<float>(), field.data_ptr<float>(), lr.data_ptr<float>(),
            channels, h, w, H, W, Hp, pw, int(k), int(s)};
  prefault(P.field, field.numel());
  // rows of LR pixels are independent: the result does not depend on the number of threads
  at::parallel_for(0, batch * h, 1, [&](int64_t r0, int64_t r1) {
    run_segments(P, r0, r1);
    stream_fence();
  });
}

}  // namespace

TORCH_LIBRARY(ssr_native, m) {
  m.def("gaussian_field_blur(Tensor hr, Tensor row_index, Tensor col_index, Tensor prec, Tensor neg_stab, "
        "Tensor monomials, Tensor(a!) field, Tensor(b!) lr, int kernel_size, int scale) -> ()");
  m.impl("gaussian_field_blur", c10::DispatchKey::CPU, &gaussian_field_blur);
}
