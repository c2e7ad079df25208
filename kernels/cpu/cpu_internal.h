// kernels/cpu/cpu_internal.h — shared between the CPU backend's files (not a public header).
#ifndef BIPO_CPU_INTERNAL_H
#define BIPO_CPU_INTERNAL_H
#include <stddef.h>

#include "kernels.h" // defines: bipo_seqs, bipo_backend

// Threads every OpenMP region of the CPU backend uses (num_threads clause), set by
// bipo_backend_cpu_set_threads. The clause (not only omp_set_num_threads) keeps the count
// right when the backend is called from a host thread other than the one that set it.
extern int bipo_cpu_nt;

// Per-thread scratch that grows and is never shrunk: no allocation on the hot path once the
// largest shape has been seen. Slots let one thread hold several buffers at once (the thread
// that calls an op is also OpenMP worker 0 inside it). Thread-local, so ops are thread-safe.
enum { CPU_SCRATCH_CALLER_0, CPU_SCRATCH_CALLER_1, CPU_SCRATCH_WORKER, CPU_SCRATCH_SLOTS };
void *bipo_cpu_scratch(int slot, size_t bytes);

void bipo_cpu_attention_forward(float *out, float *att, const float *q, const float *k,
                                const float *v, const bipo_seqs *sq, size_t NH, size_t NKV,
                                size_t HD, size_t window);
void bipo_cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                 const float *q, const float *k, const float *v,
                                 const float *att, const bipo_seqs *sq, size_t NH, size_t NKV,
                                 size_t HD);

#endif
