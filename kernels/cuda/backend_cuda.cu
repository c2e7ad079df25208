// kernels/cuda/backend_cuda.cu — the CUDA backend (CUDA runtime API + cuBLAS only; never the
// driver API, so the binary runs on machines without libcuda). Compiled only when CMake finds
// nvcc; the core then gets BIPO_HAVE_CUDA and takes bipo_backend_cuda() from here.
//
// For now this only probes for a device: the kernels land in a later issue, so the function
// returns NULL (callers fall back to the CPU backend) whether or not a GPU is present.
// Plain C-style code only (pthread_once, no C++ statics or exceptions), so C executables link
// this static library without libstdc++.
#include <pthread.h>
#include <stdio.h>

#include <cuda_runtime.h>

extern "C" {
#include "kernels.h" // defines: bipo_backend
}

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static const bipo_backend *cuda_backend = NULL;

static void cuda_probe(void) {
    int ndev = 0;
    cudaError_t err = cudaGetDeviceCount(&ndev);
    if (err != cudaSuccess) { // no driver / no device (cudaErrorInsufficientDriver = 35): CPU
        (void)cudaGetLastError(); // clear the sticky error state
        return;
    }
    if (ndev <= 0) return;
    fprintf(stderr,
            "note: %d CUDA device(s) found, but the CUDA backend lands in a later issue; "
            "using the CPU backend\n",
            ndev);
    cuda_backend = NULL;
}

extern "C" const bipo_backend *bipo_backend_cuda(void) {
    pthread_once(&cuda_once, cuda_probe);
    return cuda_backend;
}
