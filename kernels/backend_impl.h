// kernels/backend_impl.h — what the backend implementations give kernels/backend.c (not a
// public header: code outside kernels/ opens a backend with bipo_backend_open).
#ifndef BIPO_BACKEND_IMPL_H
#define BIPO_BACKEND_IMPL_H
#include "kernels.h" // defines: bipo_backend

// The CPU backend (kernels/cpu/backend_cpu.c). Always available.
const bipo_backend *bipo_backend_cpu(void);
// Threads the CPU backend uses (OpenMP and OpenBLAS together); 0 = OMP_NUM_THREADS, else all
// cores.
void bipo_backend_cpu_set_threads(int n);
// The CUDA backend (kernels/cuda/), or NULL when not compiled in or no usable GPU is present.
const bipo_backend *bipo_backend_cuda(void);

#endif
