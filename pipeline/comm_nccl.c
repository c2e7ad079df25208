// pipeline/comm_nccl.c — the group all-reduce on GPUs: one NCCL communicator per rank group,
// made from an ncclUniqueId that the group's rank 0 creates and MPI_Bcast()s. Compiled when
// CMake finds CUDA and NCCL (BIPO_HAVE_NCCL); used when the job runs on the CUDA backend
// (sched.c), otherwise the group all-reduce is MPI_Allreduce. Counts are elements, not bytes.
#include "comm_nccl.h" // defines: bipo_nccl, bipo_nccl_init, bipo_nccl_allreduce (implemented here)

#ifdef BIPO_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>

#include "util.h" // defines: CHECK, xcalloc

#define CUDA_CHECK(call)                                                                       \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        CHECK(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));                    \
    } while (0)
#define NCCL_CHECK(call)                                                                       \
    do {                                                                                       \
        ncclResult_t r_ = (call);                                                              \
        CHECK(r_ == ncclSuccess, "%s: %s", #call, ncclGetErrorString(r_));                    \
    } while (0)

struct bipo_nccl {
    ncclComm_t comm;
    cudaStream_t stream; // NCCL runs on its own stream
    double *dbuf;        // device staging buffer
    size_t cap;          // elements
};

bipo_nccl *bipo_nccl_init(MPI_Comm group) {
    int rank, size;
    MPI_Comm_rank(group, &rank);
    MPI_Comm_size(group, &size);
    ncclUniqueId id;
    if (rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    CHECK(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, group) == MPI_SUCCESS, "MPI_Bcast of the NCCL id");
    bipo_nccl *n = xcalloc(1, sizeof *n);
    CUDA_CHECK(cudaStreamCreate(&n->stream));
    NCCL_CHECK(ncclCommInitRank(&n->comm, size, id, rank));
    return n;
}

void bipo_nccl_allreduce(double *buf, size_t count, void *ctx) {
    bipo_nccl *n = ctx;
    if (count > n->cap) {
        if (n->dbuf) CUDA_CHECK(cudaFree(n->dbuf));
        CUDA_CHECK(cudaMalloc((void **)&n->dbuf, count * sizeof(double)));
        n->cap = count;
    }
    CUDA_CHECK(cudaMemcpyAsync(n->dbuf, buf, count * sizeof(double), cudaMemcpyHostToDevice, n->stream));
    NCCL_CHECK(ncclAllReduce(n->dbuf, n->dbuf, count, ncclDouble, ncclSum, n->comm, n->stream));
    CUDA_CHECK(cudaMemcpyAsync(buf, n->dbuf, count * sizeof(double), cudaMemcpyDeviceToHost, n->stream));
    CUDA_CHECK(cudaStreamSynchronize(n->stream));
}

void bipo_nccl_free(bipo_nccl *n) {
    if (!n) return;
    if (n->dbuf) cudaFree(n->dbuf);
    ncclCommDestroy(n->comm);
    cudaStreamDestroy(n->stream);
    free(n);
}
#endif
