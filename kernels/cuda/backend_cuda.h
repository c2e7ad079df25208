// kernels/cuda/backend_cuda.h — what tests may see of the CUDA backend beyond kernels.h.
#ifndef BIPO_BACKEND_CUDA_H
#define BIPO_BACKEND_CUDA_H
#include "kernels.h" // defines: bipo_backend

// The CUDA backend's table whether or not a device is present (bipo_backend_cuda() returns it
// only when one is): for checks that need no GPU, such as "no NULL entry". Calling its ops
// without a device is fatal.
const bipo_backend *bipo_cuda_table(void);

#endif
