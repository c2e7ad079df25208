// pipeline/comm_nccl.h — NCCL all-reduce for a rank group (see comm_nccl.c).
#ifndef BIPO_COMM_NCCL_H
#define BIPO_COMM_NCCL_H
#include <mpi.h>
#include <stddef.h>

typedef struct bipo_nccl bipo_nccl;
#ifdef BIPO_HAVE_NCCL
bipo_nccl *bipo_nccl_init(MPI_Comm group);                 // collective over the group
void bipo_nccl_allreduce(double *buf, size_t count, void *ctx); // bipo_dp.allreduce; ctx = bipo_nccl*
void bipo_nccl_free(bipo_nccl *n);
#endif
#endif
